"""Reactions, pins, thread replies and edits in real time, on both WebSocket
protocols: the events, what they show, and their replay on resume."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from chat.models import Event
from chat.services import messages as message_services
from chat.services import pins, reactions
from schema.global_ids import encode_id
from tests.schema.test_subscriptions import PROTOCOLS, connect, events_of, rid, silent, until_listening

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = """
subscription RoomEvents($roomId: ID, $after: String) {
  roomEvents(roomId: $roomId, after: $after) {
    __typename cursor seq
    ... on ReactionAdded { emoji user { username } message { id text reactions { emoji count } } }
    ... on ReactionRemoved { emoji user { username } message { id text reactions { emoji count } } }
    ... on MessagePinned { by { username } message { id text pinnedBy { username } } }
    ... on MessageUnpinned { by { username } message { id text pinnedAt } }
    ... on MessageAdded { message { id text replyTo { id replyCount lastReplyAt } } }
    ... on MessageEdited { message { id text edits { text } } }
    ... on MessageDeleted { message { id text isDeleted } }
  }
}
"""
ADD_REACTION = "mutation A($id: ID!, $e: String!) { addReaction(messageId: $id, emoji: $e) { id } }"
REMOVE_REACTION = "mutation R($id: ID!, $e: String!) { removeReaction(messageId: $id, emoji: $e) { id } }"
PIN = "mutation P($id: ID!) { pinMessage(id: $id) { id pinnedAt } }"
UNPIN = "mutation U($id: ID!) { unpinMessage(id: $id) { id pinnedAt } }"
SEND = "mutation S($input: SendMessageInput!) { sendMessage(input: $input) { id } }"
EDIT = "mutation E($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { id } }"


def mid(message) -> str:
    return encode_id("Message", message.pk)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_reactions_pins_replies_and_edits_reach_members_in_order(protocol, room, alice, bob, api):
    root = await sync_to_async(message_services.send_message)(alice, room.pk, "root")
    client = await connect(bob, protocol)
    op = await client.subscribe(EVENTS, {"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")

    await api(ADD_REACTION, {"id": mid(root), "e": "👍"}, alice)
    await api(ADD_REACTION, {"id": mid(root), "e": "👍"}, alice)  # no change: no event
    await api(REMOVE_REACTION, {"id": mid(root), "e": "👍"}, alice)
    await api(REMOVE_REACTION, {"id": mid(root), "e": "👍"}, alice)  # no change: no event
    await api(PIN, {"id": mid(root)}, alice)
    await api(PIN, {"id": mid(root)}, alice)  # no change: no event
    await api(UNPIN, {"id": mid(root)}, alice)
    first = (await api(SEND, {"input": {"roomId": rid(room), "text": "r1", "threadId": mid(root)}}, bob))["sendMessage"]
    await api(SEND, {"input": {"roomId": rid(room), "text": "r2", "threadId": first["id"]}}, alice)
    await api(EDIT, {"id": mid(root), "text": "root!"}, alice)

    got = await events_of(client, op, 7)
    assert [e["__typename"] for e in got] == [
        "ReactionAdded",
        "ReactionRemoved",
        "MessagePinned",
        "MessageUnpinned",
        "MessageAdded",
        "MessageAdded",
        "MessageEdited",
    ]
    assert [e["seq"] for e in got] == list(range(got[0]["seq"], got[0]["seq"] + 7))
    added, removed, pinned, unpinned, reply1, reply2, edited = got
    assert added["emoji"] == "👍" and added["user"] == {"username": "alice"}
    assert added["message"]["id"] == mid(root)
    assert removed["emoji"] == "👍" and removed["user"] == {"username": "alice"}
    assert pinned["by"] == {"username": "alice"} and pinned["message"]["id"] == mid(root)
    assert unpinned["by"] == {"username": "alice"} and unpinned["message"]["pinnedAt"] is None
    # The root's count is read when the event is rendered: the second reply may already be in it
    # (the next test sends one reply at a time and pins each count).
    assert reply1["message"]["replyTo"]["id"] == mid(root) and reply1["message"]["replyTo"]["replyCount"] in (1, 2)
    assert reply2["message"]["replyTo"]["id"] == mid(root)  # a reply to a reply joins the root's thread
    assert reply2["message"]["replyTo"]["replyCount"] == 2
    assert reply2["message"]["replyTo"]["lastReplyAt"] is not None
    assert edited["message"]["edits"] == [{"text": "root"}]
    await silent(client)
    await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_reply_count_is_current_in_each_replys_message_added(protocol, room, alice, bob, api):
    root = await sync_to_async(message_services.send_message)(alice, room.pk, "root")
    client = await connect(bob, protocol)
    op = await client.subscribe(EVENTS, {"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    for i in range(3):
        await api(SEND, {"input": {"roomId": rid(room), "text": f"r{i}", "threadId": mid(root)}}, alice)
        [event] = await events_of(client, op, 1)
        assert event["message"]["replyTo"] == {
            "id": mid(root),
            "replyCount": i + 1,
            "lastReplyAt": event["message"]["replyTo"]["lastReplyAt"],
        }
    await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_resume_replays_reactions_and_pins_exactly_once(protocol, room, alice, bob):
    message = await sync_to_async(message_services.send_message)(alice, room.pk, "hello")
    client = await connect(bob, protocol)
    op = await client.subscribe(EVENTS)
    await until_listening(f"room.{room.pk}")
    await sync_to_async(reactions.add_reaction)(alice, message.pk, "👀")
    [seen] = await events_of(client, op, 1)
    await client.close()

    await sync_to_async(reactions.add_reaction)(bob, message.pk, "👀")
    await sync_to_async(pins.pin_message)(alice, message.pk)
    await sync_to_async(reactions.remove_reaction)(alice, message.pk, "👀")
    await sync_to_async(pins.unpin_message)(alice, message.pk)

    client = await connect(bob, protocol)
    op = await client.subscribe(EVENTS, {"after": seen["cursor"]})
    replayed = await events_of(client, op, 4)
    assert [(e["__typename"], e["seq"]) for e in replayed] == [
        ("ReactionAdded", seen["seq"] + 1),
        ("MessagePinned", seen["seq"] + 2),
        ("ReactionRemoved", seen["seq"] + 3),
        ("MessageUnpinned", seen["seq"] + 4),
    ]
    assert replayed[0]["user"] == {"username": "bob"}
    assert replayed[2]["user"] == {"username": "alice"}
    # Then live, with no duplicate.
    await sync_to_async(reactions.add_reaction)(alice, message.pk, "🎉")
    [live] = await events_of(client, op, 1)
    assert (live["__typename"], live["seq"], live["emoji"]) == ("ReactionAdded", seen["seq"] + 5, "🎉")
    await silent(client)
    await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_outsiders_get_none_of_it(protocol, room, alice, bob, carol):
    message = await sync_to_async(message_services.send_message)(alice, room.pk, "hello")
    client = await connect(carol, protocol)
    await client.subscribe(EVENTS)
    await until_listening(f"user.{carol.pk}")
    await sync_to_async(reactions.add_reaction)(bob, message.pk, "👀")
    await sync_to_async(pins.pin_message)(alice, message.pk)
    await silent(client)
    await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_deleted_messages_reactions_and_pins_replay_as_tombstones(protocol, room, alice, bob, api):
    start = await sync_to_async(message_services.send_message)(alice, room.pk, "start")
    message = await sync_to_async(message_services.send_message)(alice, room.pk, "secret plans")
    client = await connect(bob, protocol)
    op = await client.subscribe(EVENTS, {"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    await sync_to_async(reactions.add_reaction)(bob, start.pk, "👀")
    [seen] = await events_of(client, op, 1)
    await client.close()

    await sync_to_async(reactions.add_reaction)(bob, message.pk, "👀")
    await sync_to_async(pins.pin_message)(alice, message.pk)
    await api("mutation D($id: ID!) { deleteMessage(id: $id) { id } }", {"id": mid(message)}, alice)
    stored = await sync_to_async(list)(Event.objects.filter(room=room).order_by("seq"))
    assert {"MessageAdded", "ReactionAdded", "MessagePinned", "MessageDeleted"} <= {e.kind for e in stored}
    assert all("secret" not in json.dumps(e.payload) for e in stored)

    client = await connect(bob, protocol)
    op = await client.subscribe(EVENTS, {"roomId": rid(room), "after": seen["cursor"]})
    reacted, pinned, deleted = await events_of(client, op, 3)
    assert [reacted["__typename"], pinned["__typename"], deleted["__typename"]] == [
        "ReactionAdded",
        "MessagePinned",
        "MessageDeleted",
    ]
    assert reacted["message"] == {"id": mid(message), "text": "", "reactions": []}
    assert pinned["message"] == {"id": mid(message), "text": "", "pinnedBy": None}
    await client.close()
