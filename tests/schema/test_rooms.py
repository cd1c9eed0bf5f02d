"""Rooms over GraphQL: the room list a client renders, paging, search, and the room mutations' answers."""

from __future__ import annotations

import pytest

from chat.models import Event, Membership, Room, User
from chat.services import messages, rooms
from tests.chat_world import (
    World,
    db_state,
    fast_user,
    gid,
)

pytestmark = pytest.mark.django_db

ROOMS = """
query Rooms($search: String, $joined: Boolean, $first: Int, $after: String) {
  rooms(search: $search, joined: $joined, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { name } }
  }
}
"""
ROOM = """
query Room($id: ID!, $members: Int) {
  room(id: $id) {
    id name topic kind isPrivate memberCount unreadCount myRole
    createdBy { username }
    members(first: $members) { role user { username } }
    lastMessage { text sender { username } }
  }
}
"""
CREATE_ROOM = """
mutation CreateRoom($input: CreateRoomInput!) {
  createRoom(input: $input) { id name topic isPrivate kind memberCount myRole unreadCount members { role user { username } } }
}
"""
START_DIRECT_CHAT = (
    "mutation Start($userId: ID!) { startDirectChat(userId: $userId) { id kind isPrivate name memberCount } }"
)
JOIN_ROOM = "mutation Join($roomId: ID!) { joinRoom(roomId: $roomId) { memberCount myRole } }"
MARK_READ = (
    "mutation Read($roomId: ID!, $messageId: ID!) { markRead(roomId: $roomId, messageId: $messageId) { unreadCount } }"
)


def names(body) -> list[str]:
    return [e["node"]["name"] for e in body["data"]["rooms"]["edges"]]


def test_room_as_a_member_sees_it(gql, world: World):
    body = gql(ROOM, {"id": gid("Room", world.public.pk)}, user=world.admin)
    assert body == {
        "data": {
            "room": {
                "id": gid("Room", world.public.pk),
                "name": "Lobby",
                "topic": "Say hi",
                "kind": "GROUP",
                "isPrivate": False,
                "memberCount": 4,
                "unreadCount": 2,
                "myRole": "ADMIN",
                "createdBy": {"username": "olga"},
                "members": [
                    {"role": "OWNER", "user": {"username": "olga"}},
                    {"role": "ADMIN", "user": {"username": "adam"}},
                    {"role": "MEMBER", "user": {"username": "mia"}},
                    {"role": "MEMBER", "user": {"username": "max"}},
                ],
                "lastMessage": {"text": "welcome", "sender": {"username": "olga"}},
            }
        }
    }


def test_a_non_member_of_a_public_room_sees_members_but_no_messages(gql, world: World):
    body = gql(ROOM, {"id": gid("Room", world.public.pk), "members": 2}, user=world.outsider)
    room = body["data"]["room"]
    assert (room["memberCount"], room["unreadCount"], room["myRole"], room["lastMessage"]) == (4, 0, None, None)
    assert [m["user"]["username"] for m in room["members"]] == ["olga", "adam"]


def test_members_page_is_bounded(gql, world: World):
    body = gql(ROOM, {"id": gid("Room", world.public.pk), "members": 101}, user=world.owner)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_unread_count_follows_mark_read_and_ignores_own_and_deleted(gql, world: World):
    variables = {"id": gid("Room", world.public.pk)}
    assert gql(ROOM, variables, user=world.other_member)["data"]["room"]["unreadCount"] == 2
    messages.send_message(world.other_member, world.public.pk, "my own")
    messages.delete_message(world.owner, world.owner_message.pk)
    assert gql(ROOM, variables, user=world.other_member)["data"]["room"]["unreadCount"] == 1
    body = gql(
        MARK_READ,
        {"roomId": gid("Room", world.public.pk), "messageId": gid("Message", world.message.pk)},
        user=world.other_member,
    )
    assert body == {"data": {"markRead": {"unreadCount": 0}}}


def test_rooms_lists_public_rooms_and_mine_newest_first_with_search_and_joined(gql, world: World):
    rooms.start_direct_chat(world.member, world.outsider.pk)
    rooms.create_room(world.outsider, "Hidden", is_private=True)
    assert names(gql(ROOMS, {}, user=world.member)) == ["mia, otto", "Secret", "Lobby"]
    assert names(gql(ROOMS, {}, user=world.outsider)) == ["Hidden", "mia, otto", "Lobby"]
    assert names(gql(ROOMS, {"joined": True}, user=world.outsider)) == ["Hidden", "mia, otto"]
    assert names(gql(ROOMS, {"joined": False}, user=world.outsider)) == ["Lobby"]
    assert names(gql(ROOMS, {"search": "SAY"}, user=world.member)) == ["Lobby"]  # the topic matches


def test_rooms_pages_with_keyset_cursors(gql, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "create_room": (1000, 60)}
    me = fast_user("me")
    for i in range(23):
        rooms.create_room(me, f"room {i:02}")
    page = gql(ROOMS, {}, user=me)["data"]["rooms"]
    assert [e["node"]["name"] for e in page["edges"]] == [f"room {i:02}" for i in range(22, 2, -1)]
    assert (page["totalCount"], page["pageInfo"]["hasNextPage"]) == (23, True)
    rooms.create_room(me, "newer")  # a new room does not shift the next page
    rest = gql(ROOMS, {"after": page["pageInfo"]["endCursor"]}, user=me)["data"]["rooms"]
    assert [e["node"]["name"] for e in rest["edges"]] == ["room 02", "room 01", "room 00"]


def test_create_room_answers_with_the_new_room(gql):
    alice, bob = fast_user("alice"), fast_user("bob")
    body = gql(
        CREATE_ROOM,
        {"input": {"name": "Plans", "topic": "Q3", "isPrivate": True, "memberIds": [gid("User", bob.pk)]}},
        user=alice,
    )
    room = Room.objects.get(name="Plans")
    assert body == {
        "data": {
            "createRoom": {
                "id": gid("Room", room.pk),
                "name": "Plans",
                "topic": "Q3",
                "isPrivate": True,
                "kind": "GROUP",
                "memberCount": 2,
                "myRole": "OWNER",
                "unreadCount": 0,
                "members": [
                    {"role": "OWNER", "user": {"username": "alice"}},
                    {"role": "MEMBER", "user": {"username": "bob"}},
                ],
            }
        }
    }


@pytest.mark.parametrize(
    ("input", "code", "field"),
    [
        ({"name": ""}, "BAD_USER_INPUT", "name"),
        ({"name": "x", "memberIds": ["garbage"]}, "BAD_USER_INPUT", "memberIds"),
        ({"name": "x", "memberIds": [gid("User", 999999)]}, "BAD_USER_INPUT", "memberIds"),
    ],
)
def test_create_room_bad_input(gql, input, code, field):
    alice = fast_user("alice")
    before = db_state()
    body = gql(CREATE_ROOM, {"input": input}, user=alice)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == code
    assert list(body["errors"][0]["extensions"]["fields"]) == [field]
    assert db_state() == before


def test_start_direct_chat_twice_gives_the_same_room(gql):
    alice, bob = fast_user("alice"), fast_user("bob")
    first = gql(START_DIRECT_CHAT, {"userId": gid("User", bob.pk)}, user=alice)["data"]["startDirectChat"]
    again = gql(START_DIRECT_CHAT, {"userId": gid("User", alice.pk)}, user=bob)["data"]["startDirectChat"]
    assert (
        first
        == again
        == {
            "id": first["id"],
            "kind": "DIRECT",
            "isPrivate": True,
            "name": "alice, bob",
            "memberCount": 2,
        }
    )
    assert Room.objects.count() == 1


def test_join_room_full_answers_room_full(gql, world: World, settings):
    settings.MAX_USERS_IN_ROOM = 4
    before = db_state()
    body = gql(JOIN_ROOM, {"roomId": gid("Room", world.public.pk)}, user=world.outsider)
    assert body["errors"][0]["extensions"]["code"] == "ROOM_FULL"
    assert db_state() == before
    settings.MAX_USERS_IN_ROOM = 5
    assert gql(JOIN_ROOM, {"roomId": gid("Room", world.public.pk)}, user=world.outsider) == {
        "data": {"joinRoom": {"memberCount": 5, "myRole": "MEMBER"}}
    }
    membership = Membership.objects.get(room=world.public, user=world.outsider)
    assert Event.objects.get(room=world.public, seq=membership.joined_seq).kind == "MemberJoined"


ROOMS_WITH_MEMBERS = """
query Rooms { rooms(joined: true) { edges { node { name memberCount members { user { username } } } } } }
"""


def test_a_deactivated_member_is_left_out_of_member_lists(gql, world: World):
    """One inactive member used to turn every member list of the room into an error."""
    User.objects.filter(pk=world.other_member.pk).update(is_active=False)
    room = gql(ROOM, {"id": gid("Room", world.public.pk)}, user=world.owner)
    assert "errors" not in room, room
    assert [m["user"]["username"] for m in room["data"]["room"]["members"]] == ["olga", "adam", "mia"]
    assert room["data"]["room"]["memberCount"] == 3
    listed = gql(ROOMS_WITH_MEMBERS, user=world.member)
    assert "errors" not in listed, listed
    lobby = next(e["node"] for e in listed["data"]["rooms"]["edges"] if e["node"]["name"] == "Lobby")
    assert lobby == {
        "name": "Lobby",
        "memberCount": 3,
        "members": [{"user": {"username": u}} for u in ("olga", "adam", "mia")],
    }
