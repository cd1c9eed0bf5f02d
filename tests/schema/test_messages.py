"""Messages over GraphQL: history paging both ways, search, and the message mutations' answers."""

from __future__ import annotations

import pytest

from chat.models import Message, User
from chat.services import messages, rooms
from tests.chat_world import (
    World,
    db_state,
    fast_user,
    gid,
)

pytestmark = pytest.mark.django_db

HISTORY = """
query History($roomId: ID!, $first: Int, $after: String, $last: Int, $before: String, $search: String) {
  messages(roomId: $roomId, first: $first, after: $after, last: $last, before: $before, search: $search) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { text } }
  }
}
"""
SEND_MESSAGE = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) {
    id text clientId isDeleted editedAt deletedAt
    sender { username }
    room { name unreadCount }
    replyTo { text }
    attachments { name }
  }
}
"""
EDIT_MESSAGE = "mutation Edit($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { text editedAt } }"
DELETE_MESSAGE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { text isDeleted deletedAt attachments { id } } }"
MESSAGE_NODE = "query Node($id: ID!) { node(id: $id) { ... on Message { text sender { username } } } }"


@pytest.fixture
def chatty(settings):
    """A room with 30 messages "m00".."m29" (oldest first)."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "send_message": (1000, 10)}
    alice = fast_user("alice")
    room = rooms.create_room(alice, "Chatty")
    for i in range(30):
        messages.send_message(alice, room.pk, f"m{i:02}")
    return alice, room


def texts(body) -> list[str]:
    return [e["node"]["text"] for e in body["data"]["messages"]["edges"]]


def test_newest_first_and_back_in_time(gql, chatty):
    alice, room = chatty
    page = gql(HISTORY, {"roomId": gid("Room", room.pk)}, user=alice)
    assert texts(page) == [f"m{i:02}" for i in range(29, 9, -1)]  # default page: 20
    info = page["data"]["messages"]["pageInfo"]
    assert info["hasNextPage"] is True
    messages.send_message(alice, room.pk, "new while paging")  # does not shift older pages
    older = gql(HISTORY, {"roomId": gid("Room", room.pk), "first": 100, "after": info["endCursor"]}, user=alice)
    assert texts(older) == [f"m{i:02}" for i in range(9, -1, -1)]
    assert older["data"]["messages"]["pageInfo"]["hasNextPage"] is False


def test_last_and_before_page_towards_newer_messages(gql, chatty):
    alice, room = chatty
    page = gql(HISTORY, {"roomId": gid("Room", room.pk), "first": 5}, user=alice)
    end = page["data"]["messages"]["pageInfo"]["endCursor"]
    older = gql(HISTORY, {"roomId": gid("Room", room.pk), "first": 5, "after": end}, user=alice)
    assert texts(older) == ["m24", "m23", "m22", "m21", "m20"]
    start = older["data"]["messages"]["pageInfo"]["startCursor"]
    newer = gql(HISTORY, {"roomId": gid("Room", room.pk), "last": 3, "before": start}, user=alice)
    assert texts(newer) == ["m27", "m26", "m25"]
    assert newer["data"]["messages"]["pageInfo"]["hasPreviousPage"] is True


@pytest.mark.parametrize(
    "variables",
    [{"first": 101}, {"last": 500}, {"first": -1}, {"after": "b3JkZXJlZGN1cnNvcjpbMV0="}, {"before": "%%%"}],
)
def test_bad_paging_answers_bad_user_input(gql, chatty, variables):
    alice, room = chatty
    body = gql(HISTORY, {"roomId": gid("Room", room.pk), **variables}, user=alice)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


def test_search_matches_words_and_skips_deleted(gql, world: World):
    messages.send_message(world.member, world.public.pk, "Deploy the release tonight")
    gone = messages.send_message(world.owner, world.public.pk, "release notes draft")
    messages.delete_message(world.owner, gone.pk)
    body = gql(HISTORY, {"roomId": gid("Room", world.public.pk), "search": "RELEASE"}, user=world.admin)
    assert texts(body) == ["Deploy the release tonight"]


def test_send_message_answers_with_the_message(gql, world: World):
    body = gql(
        SEND_MESSAGE,
        {
            "input": {
                "roomId": gid("Room", world.public.pk),
                "text": " re: hello ",
                "clientId": "uuid-1",
                "replyToId": gid("Message", world.message.pk),
            }
        },
        user=world.owner,
    )
    message = Message.objects.get(client_id="uuid-1")
    assert body == {
        "data": {
            "sendMessage": {
                "id": gid("Message", message.pk),
                "text": "re: hello",
                "clientId": "uuid-1",
                "isDeleted": False,
                "editedAt": None,
                "deletedAt": None,
                "sender": {"username": "olga"},
                "room": {"name": "Lobby", "unreadCount": 1},
                "replyTo": {"text": "hello lobby"},
                "attachments": [],
            }
        }
    }
    before = db_state()
    again = gql(
        SEND_MESSAGE,
        {"input": {"roomId": gid("Room", world.public.pk), "text": "x", "clientId": "uuid-1"}},
        user=world.owner,
    )
    assert again["data"]["sendMessage"]["id"] == gid("Message", message.pk)
    assert db_state() == before


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"text": "   "}, "text"),
        ({"text": "x" * 4001}, "text"),
        ({"text": "x", "clientId": "k" * 65}, "clientId"),
        ({"text": "x", "attachmentIds": [gid("Attachment", 999999)]}, "attachmentIds"),
    ],
)
def test_send_message_bad_input(gql, world: World, input, field):
    before = db_state()
    body = gql(SEND_MESSAGE, {"input": {"roomId": gid("Room", world.public.pk), **input}}, user=world.member)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert list(body["errors"][0]["extensions"]["fields"]) == [field]
    assert db_state() == before


def test_edit_and_delete_answers(gql, world: World):
    edited = gql(EDIT_MESSAGE, {"id": gid("Message", world.message.pk), "text": "hello again"}, user=world.member)
    assert edited["data"]["editMessage"]["text"] == "hello again"
    assert edited["data"]["editMessage"]["editedAt"] is not None
    deleted = gql(DELETE_MESSAGE, {"id": gid("Message", world.message.pk)}, user=world.member)["data"]["deleteMessage"]
    assert (deleted["text"], deleted["isDeleted"], deleted["attachments"]) == ("", True, [])
    assert deleted["deletedAt"] is not None


def test_a_deleted_account_leaves_messages_without_sender(gql, world: World):
    User.objects.filter(pk=world.member.pk).delete()
    body = gql(MESSAGE_NODE, {"id": gid("Message", world.message.pk)}, user=world.owner)
    assert body == {"data": {"node": {"text": "hello lobby", "sender": None}}}


def test_node_hides_messages_of_rooms_one_is_not_in(gql, world: World):
    body = gql(MESSAGE_NODE, {"id": gid("Message", world.private_message.pk)}, user=world.outsider)
    assert body == {"data": {"node": None}}
