"""Every list costs a fixed number of SQL queries, whatever the number of rows.

Counts include the one query that loads the caller from the token.
"""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from chat.models import Attachment, Avatar, Membership, Room, User
from chat.services import messages, pins, reactions, rooms
from tests.chat_world import fast_user, gid

pytestmark = pytest.mark.django_db

ROOM_LIST = """
query RoomList($first: Int) {
  rooms(first: $first, joined: true) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id name topic kind isPrivate memberCount unreadCount unreadMentionCount notificationLevel myRole
        avatarUrl(size: 64)
        createdBy { username }
        members(first: 10) { role joinedAt user { id username displayName avatarUrl(size: 64) } }
        lastMessage { id text createdAt isDeleted sender { id username displayName } }
      }
    }
  }
}
"""

HISTORY = """
query History($roomId: ID!, $first: Int) {
  messages(roomId: $roomId, first: $first) {
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id text clientId createdAt editedAt isDeleted
        sender { id username displayName }
        replyTo { id text sender { id username } replyCount }
        attachments { id name contentType size width height }
        replyCount lastReplyAt pinnedAt pinnedBy { id username }
        reactions { emoji count reactedByMe users(first: 3) { id username } }
        edits { text editedAt }
      }
    }
  }
}
"""

USERS = "query Users($first: Int) { users(first: $first) { edges { node { id username displayName email } } } }"

# Caller, rooms page, memberships page, members' users, last messages, their senders,
# creators, total count.
ROOM_LIST_QUERIES = 8
# Caller, room access with the membership, messages page, senders, reply targets, their senders,
# attachments, pinners, reactions with their users, edits (reply counts are columns of the page).
HISTORY_QUERIES = 10
USERS_QUERIES = 2

SEARCH = """
query Search($query: String!, $first: Int) {
  searchMessages(query: $query, first: $first) {
    totalCount
    edges { cursor snippet node { id text createdAt sender { id username } room { id name } } }
  }
}
"""
# Caller, match count, the page of hits with snippets, their messages, senders, rooms.
SEARCH_QUERIES = 6


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATE_LIMITS = {
        **settings.RATE_LIMITS,
        "send_message": (1000, 10),
        "create_room": (1000, 60),
        "reaction": (1000, 60),
        "pin": (1000, 60),
    }


def build_rooms(n: int):
    me = fast_user("me")
    others = [fast_user(f"friend{i}") for i in range(4)]
    for i in range(n):
        room = rooms.create_room(me, f"room {i}", member_ids=[u.pk for u in others])
        first = messages.send_message(others[i % 4], room.pk, f"hello {i}")
        messages.send_message(others[(i + 1) % 4], room.pk, f"reply {i} @me", reply_to_id=first.pk)
        # Pictures for every room and person: their URLs are signed from the ids the rows carry.
        Room.objects.filter(pk=room.pk).update(avatar=Avatar.objects.create(small="s.png", large="l.png"))
    for user in (me, *others):
        User.objects.filter(pk=user.pk).update(avatar=Avatar.objects.create(small="s.png", large="l.png"))
    return me


@pytest.mark.parametrize("rows", [5, 50])
def test_room_list_with_members_last_message_and_unread_count(gql, django_assert_num_queries, rows):
    me = build_rooms(rows)
    with django_assert_num_queries(ROOM_LIST_QUERIES):
        body = gql(ROOM_LIST, {"first": 50}, user=me)
    edges = body["data"]["rooms"]["edges"]
    assert len(edges) == rows
    assert body["data"]["rooms"]["totalCount"] == rows
    newest = edges[0]["node"]
    assert newest["name"] == f"room {rows - 1}"
    assert (newest["memberCount"], newest["unreadCount"], newest["myRole"]) == (5, 2, "OWNER")
    assert (newest["unreadMentionCount"], newest["notificationLevel"]) == (1, "MENTIONS")
    assert newest["avatarUrl"].startswith("/api/avatars/")
    assert all(m["user"]["avatarUrl"].startswith("/api/avatars/") for m in newest["members"])
    assert [m["user"]["username"] for m in newest["members"]] == ["me", "friend0", "friend1", "friend2", "friend3"]
    assert newest["lastMessage"]["text"] == f"reply {rows - 1} @me"
    assert newest["lastMessage"]["sender"]["username"] == f"friend{rows % 4}"


def build_history(n: int):
    me = fast_user("me")
    others = [fast_user(f"friend{i}") for i in range(3)]
    room = rooms.create_room(me, "history", member_ids=[u.pk for u in others])
    previous = None
    for i in range(n):
        sender = others[i % 3] if i % 2 else me
        attachment = Attachment(uploader=sender, name=f"f{i}.txt", content_type="text/plain", size=1)
        attachment.file.save(f"f{i}.txt", ContentFile(b"x"), save=False)
        attachment.save()
        previous = messages.send_message(
            sender,
            room.pk,
            f"message {i}",
            reply_to_id=previous.pk if previous and i % 3 == 0 else None,
            attachment_ids=[attachment.pk] if i % 2 == 0 else (),
        )
        for j, reactor in enumerate([me, *others][: i % 4]):
            reactions.add_reaction(reactor, previous.pk, "👍" if j % 2 else "🎉")
        if i % 5 == 0:
            messages.edit_message(sender, previous.pk, f"message {i}.")
            messages.edit_message(sender, previous.pk, f"message {i}")
        if i % 7 == 0:
            pins.pin_message(me, previous.pk)
    return me, room


@pytest.mark.parametrize("rows", [5, 50, 100])
def test_history_page_with_senders_replies_and_attachments(gql, django_assert_num_queries, rows):
    me, room = build_history(rows)
    with django_assert_num_queries(HISTORY_QUERIES):
        body = gql(HISTORY, {"roomId": gid("Room", room.pk), "first": 100}, user=me)
    edges = body["data"]["messages"]["edges"]
    assert len(edges) == rows
    assert edges[0]["node"]["text"] == f"message {rows - 1}"
    assert sum(len(e["node"]["attachments"]) for e in edges) == (rows + 1) // 2
    assert sum(1 for e in edges if e["node"]["replyTo"]) == len([i for i in range(1, rows) if i % 3 == 0])
    assert sum(g["count"] for e in edges for g in e["node"]["reactions"]) == sum(i % 4 for i in range(rows))
    assert sum(len(e["node"]["edits"]) for e in edges) == 2 * len(range(0, rows, 5))
    assert sum(1 for e in edges if e["node"]["pinnedBy"]) == len(range(0, rows, 7))
    assert sum(e["node"]["replyCount"] for e in edges) == len([i for i in range(1, rows) if i % 3 == 0])


@pytest.mark.parametrize("rows", [5, 50])
def test_user_list(gql, django_assert_num_queries, rows):
    me = fast_user("me")
    for i in range(rows):
        fast_user(f"u{i:03}")
    with django_assert_num_queries(USERS_QUERIES):
        body = gql(USERS, {"first": 50}, user=me)
    assert len(body["data"]["users"]["edges"]) == rows


def test_counts_do_not_depend_on_members_per_room(gql, django_assert_num_queries):
    me = build_rooms(3)
    crowd = [fast_user(f"crowd{i}") for i in range(30)]
    Membership.objects.bulk_create(
        Membership(room_id=room_id, user=u)
        for room_id in me.memberships.values_list("room_id", flat=True)
        for u in crowd
    )
    with django_assert_num_queries(ROOM_LIST_QUERIES):
        body = gql(ROOM_LIST, {"first": 50}, user=me)
    assert [e["node"]["memberCount"] for e in body["data"]["rooms"]["edges"]] == [35, 35, 35]
    assert all(len(e["node"]["members"]) == 10 for e in body["data"]["rooms"]["edges"])


@pytest.mark.parametrize("rows", [5, 50])
def test_search_page_with_senders_and_rooms(gql, django_assert_num_queries, rows):
    me = build_rooms(rows)
    with django_assert_num_queries(SEARCH_QUERIES):
        body = gql(SEARCH, {"query": "reply", "first": 50}, user=me)
    edges = body["data"]["searchMessages"]["edges"]
    assert len(edges) == rows == body["data"]["searchMessages"]["totalCount"]
    assert edges[0]["node"]["room"]["name"] == f"room {rows - 1}"
    assert edges[0]["snippet"] == f"<mark>reply</mark> {rows - 1} @me"
