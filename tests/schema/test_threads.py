"""Threads over GraphQL: replying with threadId (or replyToId), flat threads,
reply counts, and a thread's replies oldest first."""

from __future__ import annotations

import pytest

from chat.models import Message
from chat.services import messages, rooms
from tests.chat_world import World, db_state, gid

pytestmark = pytest.mark.django_db

SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { id text replyTo { id text replyCount lastReplyAt } }
}
"""
THREAD = """
query Thread($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  node(id: $id) {
    ... on Message {
      replyCount lastReplyAt
      replies(first: $first, after: $after, last: $last, before: $before) {
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { node { text replyTo { id } } }
      }
    }
  }
}
"""
DELETE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { id } }"


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "send_message": (1000, 10)}


def send(gql, user, room, text, **ids):
    return gql(SEND, {"input": {"roomId": gid("Room", room.pk), "text": text, **ids}}, user=user)


def texts(body) -> list[str]:
    return [e["node"]["text"] for e in body["data"]["node"]["replies"]["edges"]]


def test_a_reply_with_thread_id_counts_in_its_root(gql, world: World):
    root = gid("Message", world.message.pk)
    body = send(gql, world.owner, world.public, "first reply", threadId=root)
    reply = body["data"]["sendMessage"]
    assert reply["replyTo"]["id"] == root and reply["replyTo"]["replyCount"] == 1
    stored = Message.objects.get(pk=world.message.pk)
    assert reply["replyTo"]["lastReplyAt"] is not None
    assert stored.last_reply_at == Message.objects.get(text="first reply").created_at


def test_a_reply_to_a_reply_joins_the_roots_thread(gql, world: World):
    root = gid("Message", world.message.pk)
    first = send(gql, world.owner, world.public, "one", threadId=root)["data"]["sendMessage"]
    second = send(gql, world.admin, world.public, "two", threadId=first["id"])["data"]["sendMessage"]
    third = send(gql, world.member, world.public, "three", replyToId=second["id"])["data"]["sendMessage"]
    assert second["replyTo"]["id"] == root and third["replyTo"]["id"] == root
    assert third["replyTo"]["replyCount"] == 3
    body = gql(THREAD, {"id": root}, user=world.other_member)
    assert body["data"]["node"]["replyCount"] == 3
    assert texts(body) == ["one", "two", "three"]
    # The replies themselves start no thread of their own.
    assert gql(THREAD, {"id": first["id"]}, user=world.member)["data"]["node"]["replyCount"] == 0


def test_replies_page_oldest_first_both_ways(gql, world: World):
    for i in range(5):
        messages.send_message(world.owner, world.public.pk, f"r{i}", thread_id=world.message.pk)
    root = gid("Message", world.message.pk)
    page = gql(THREAD, {"id": root, "first": 2}, user=world.member)
    assert texts(page) == ["r0", "r1"]
    info = page["data"]["node"]["replies"]["pageInfo"]
    assert info["hasNextPage"] is True
    page = gql(THREAD, {"id": root, "first": 2, "after": info["endCursor"]}, user=world.member)
    assert texts(page) == ["r2", "r3"]
    page = gql(THREAD, {"id": root, "last": 2}, user=world.member)
    assert texts(page) == ["r3", "r4"]
    before = page["data"]["node"]["replies"]["pageInfo"]["startCursor"]
    page = gql(THREAD, {"id": root, "last": 2, "before": before}, user=world.member)
    assert texts(page) == ["r1", "r2"]


def test_thread_id_and_reply_to_id_must_agree(gql, world: World):
    other = messages.send_message(world.owner, world.public.pk, "another root")
    before = db_state()
    body = send(
        gql,
        world.member,
        world.public,
        "x",
        threadId=gid("Message", world.message.pk),
        replyToId=gid("Message", other.pk),
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert db_state() == before


@pytest.mark.parametrize("target", ["private", "missing", "malformed"])
def test_a_thread_of_another_room_or_none_is_bad_user_input(gql, world: World, target):
    thread = {
        "private": gid("Message", world.private_message.pk),
        "missing": gid("Message", 10**9),
        "malformed": "nope",
    }[target]
    before = db_state()
    body = send(gql, world.member, world.public, "x", threadId=thread)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body
    assert body["data"] is None
    assert db_state() == before


def test_deleting_a_reply_takes_it_out_of_the_count(gql, world: World):
    first = messages.send_message(world.owner, world.public.pk, "one", thread_id=world.message.pk)
    second = messages.send_message(world.admin, world.public.pk, "two", thread_id=world.message.pk)
    gql(DELETE, {"id": gid("Message", second.pk)}, user=world.admin)
    root = Message.objects.get(pk=world.message.pk)
    assert (root.reply_count, root.last_reply_at) == (1, first.created_at)
    gql(DELETE, {"id": gid("Message", first.pk)}, user=world.owner)
    root.refresh_from_db()
    assert (root.reply_count, root.last_reply_at) == (0, None)
    # Tombstones stay in the thread, as in the room's history.
    body = gql(THREAD, {"id": gid("Message", world.message.pk)}, user=world.member)
    assert texts(body) == ["", ""]


def test_replies_are_members_only(gql, world: World):
    messages.send_message(world.owner, world.public.pk, "one", thread_id=world.message.pk)
    body = gql(THREAD, {"id": gid("Message", world.message.pk)}, user=world.outsider)
    assert body == {"data": {"node": None}}
    rooms.leave_room(world.other_member, world.public.pk)
    body = gql(THREAD, {"id": gid("Message", world.message.pk)}, user=world.other_member)
    assert body == {"data": {"node": None}}
