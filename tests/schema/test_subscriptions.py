"""Real-time over real WebSockets, on both protocols: roomEvents, messageAdded,
notifications, typing and presence, resume, and groups left behind."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat.models import Room, User
from chat.services import rooms as room_services
from schema.events.types import clear_caches
from schema.global_ids import encode_id
from tests.clients import WSClient, token_for

pytestmark = pytest.mark.django_db(transaction=True)

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]

ROOM_EVENTS = """
subscription RoomEvents($roomId: ID, $after: String) {
  roomEvents(roomId: $roomId, after: $after) {
    __typename cursor seq room { id name }
    ... on MessageAdded { message { id text sender { username } } }
    ... on MessageEdited { message { id text editedAt } }
    ... on MessageDeleted { message { id text isDeleted } }
    ... on MemberJoined { user { username } role by { username } }
    ... on MemberLeft { user { username } reason by { username } }
    ... on RoomUpdated { room { name topic } }
    ... on TypingChanged { user { username } typing }
    ... on PresenceChanged { user { username } online }
    ... on ReadReceipt { user { username } messageId }
  }
}
"""

MESSAGE_ADDED = """
subscription MessageAdded($roomId: ID) { messageAdded(roomId: $roomId) { seq room { id } message { text } } }
"""

NOTIFICATIONS = """
subscription Notifications { notifications { kind room { id name } by { username } message { text } } }
"""

SEND_MESSAGE = """
mutation Send($roomId: ID!, $text: String!) { sendMessage(input: {roomId: $roomId, text: $text}) { id } }
"""
EDIT_MESSAGE = "mutation Edit($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { id } }"
DELETE_MESSAGE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { id } }"
JOIN_ROOM = "mutation Join($roomId: ID!) { joinRoom(roomId: $roomId) { id } }"
LEAVE_ROOM = "mutation Leave($roomId: ID!) { leaveRoom(roomId: $roomId) }"
ADD_MEMBER = "mutation Add($roomId: ID!, $userId: ID!) { addMember(roomId: $roomId, userId: $userId) { id } }"
REMOVE_MEMBER = "mutation Remove($roomId: ID!, $userId: ID!) { removeMember(roomId: $roomId, userId: $userId) { id } }"
DELETE_ROOM = "mutation DeleteRoom($roomId: ID!) { deleteRoom(roomId: $roomId) }"
START_DIRECT_CHAT = "mutation Direct($userId: ID!) { startDirectChat(userId: $userId) { id } }"
SET_TYPING = "mutation Typing($roomId: ID!, $typing: Boolean!) { setTyping(roomId: $roomId, typing: $typing) }"
IS_ONLINE = "query Online($id: ID!) { node(id: $id) { ... on User { username isOnline lastSeenAt } } }"


def rid(room: Room) -> str:
    return encode_id("Room", room.pk)


def uid(user: User) -> str:
    return encode_id("User", user.pk)


@pytest.fixture
def carol(make_user):
    return make_user("carol", display_name="Carol")


@pytest.fixture
def api(agql):
    """``await api(query, variables, user)``: the ``data`` of a successful operation over HTTP."""

    async def call(query: str, variables: dict, user: User) -> dict:
        body = await agql(query, variables, user=user)
        assert "errors" not in body, body
        return body["data"]

    return call


@pytest.fixture
def room(alice, bob):
    """A public room of alice's that bob has joined."""
    created = room_services.create_room(alice, "lobby")
    room_services.join_room(bob, created.pk)
    return Room.objects.get(pk=created.pk)


async def group_size(group: str) -> int:
    layer = get_channel_layer()
    if hasattr(layer, "groups"):  # in-memory layer
        return len(layer.groups.get(group, {}))
    async with layer.connection(layer.consistent_hash(group)) as connection:
        return await connection.zcard(layer._group_key(group))


async def until_listening(group: str, count: int = 1) -> None:
    """Wait until ``count`` sockets are in ``group`` and their positions are read."""
    for _ in range(200):
        if await group_size(group) >= count:
            await asyncio.sleep(0.15)
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"nobody joined {group}")


async def connect(user: User | None, protocol: str) -> WSClient:
    client = WSClient(token=await sync_to_async(token_for)(user) if user else None, protocol=protocol)
    ack = await client.connect()
    assert ack["type"] == "connection_ack", ack
    return client


async def events_of(client: WSClient, op_id: str, n: int, timeout: float = 5) -> list[dict]:
    """The next ``n`` roomEvents payloads of ``op_id`` (skips presence, which depends on timing)."""
    result = []
    while len(result) < n:
        payload = await client.next(op_id, timeout=timeout)
        assert "errors" not in payload, payload
        event = next(iter(payload["data"].values()))
        if event.get("__typename") == "PresenceChanged":
            continue
        result.append(event)
    return result


async def silent(client: WSClient, timeout: float = 0.4) -> None:
    """Nothing but presence arrives."""
    while not await client.nothing(timeout):
        message = await client.receive()
        payload = message.get("payload") or {}
        event = next(iter((payload.get("data") or {}).values()), None) or {}
        assert event.get("__typename") == "PresenceChanged", message


async def subscription_error(client: WSClient, op_id: str) -> dict:
    """The error that ends a refused subscription, on either protocol."""
    message = await client.receive()
    if message["type"] == "error":  # graphql-transport-ws: errors before the stream starts
        return message["payload"][0]
    assert message["type"] in {"next", "data"}, message
    assert message["payload"].get("data") is None, message
    error = message["payload"]["errors"][0]
    done = await client.receive()
    assert done["type"] == "complete", done
    return error


def texts(events: list[dict]) -> list[str]:
    return [e["message"]["text"] for e in events]


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestDelivery:
    async def test_members_get_the_rooms_events_and_non_members_nothing(self, protocol, room, alice, bob, carol, api):
        bob_ws, carol_ws = await connect(bob, protocol), await connect(carol, protocol)
        bob_op = await bob_ws.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await carol_ws.subscribe(ROOM_EVENTS)  # all of carol's rooms: none
        await until_listening(f"room.{room.pk}")
        await until_listening(f"user.{carol.pk}")

        await api(SEND_MESSAGE, {"roomId": rid(room), "text": "hello"}, alice)

        [event] = await events_of(bob_ws, bob_op, 1)
        assert event["__typename"] == "MessageAdded"
        assert event["seq"] == 3  # alice joined (1), bob joined (2), the message (3)
        assert event["room"] == {"id": rid(room), "name": "lobby"}
        assert event["message"]["text"] == "hello" and event["message"]["sender"] == {"username": "alice"}
        assert event["cursor"].startswith("r1.")
        await silent(carol_ws)
        await bob_ws.close()
        await carol_ws.close()

    async def test_non_member_of_a_private_room_is_refused_not_found(self, protocol, alice, carol):
        private = await sync_to_async(room_services.create_room)(alice, "secret", is_private=True)
        client = await connect(carol, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(private)})
        error = await subscription_error(client, op)
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert await group_size(f"room.{private.pk}") == 0
        await client.close()

    async def test_anonymous_is_refused_unauthenticated(self, protocol, room):
        client = await connect(None, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        error = await subscription_error(client, op)
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        op = await client.subscribe(NOTIFICATIONS)
        assert (await subscription_error(client, op))["extensions"]["code"] == "UNAUTHENTICATED"
        await client.close()

    async def test_edits_and_deletions(self, protocol, room, alice, bob, api):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"room.{room.pk}")
        sent = (await api(SEND_MESSAGE, {"roomId": rid(room), "text": "frist"}, alice))["sendMessage"]
        await api(EDIT_MESSAGE, {"id": sent["id"], "text": "first"}, alice)
        await api(DELETE_MESSAGE, {"id": sent["id"]}, alice)

        added, edited, deleted = await events_of(client, op, 3)
        assert [added["__typename"], edited["__typename"], deleted["__typename"]] == [
            "MessageAdded",
            "MessageEdited",
            "MessageDeleted",
        ]
        assert edited["message"]["id"] == sent["id"] and edited["message"]["text"] == "first"
        assert edited["message"]["editedAt"] is not None
        assert deleted["message"] == {"id": sent["id"], "text": "", "isDeleted": True}
        assert [added["seq"], edited["seq"], deleted["seq"]] == [3, 4, 5]
        await client.close()

    async def test_message_added_is_the_simple_form(self, protocol, room, alice, bob, api):
        client = await connect(bob, protocol)
        op = await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        sent = (await api(SEND_MESSAGE, {"roomId": rid(room), "text": "one"}, alice))["sendMessage"]
        await api(EDIT_MESSAGE, {"id": sent["id"], "text": "one!"}, alice)
        await api(SEND_MESSAGE, {"roomId": rid(room), "text": "two"}, alice)
        first, second = await client.next(op), await client.next(op)
        assert first["data"]["messageAdded"] == {"seq": 3, "room": {"id": rid(room)}, "message": {"text": "one"}}
        assert second["data"]["messageAdded"]["message"] == {"text": "two"}
        assert await client.nothing(0.3)
        await client.close()

    async def test_messages_of_a_deleted_account_render_sender_null(self, protocol, room, alice, bob, api):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await api(SEND_MESSAGE, {"roomId": rid(room), "text": "hello"}, alice)
        [hello] = await events_of(client, op, 1)
        assert hello["message"]["sender"] == {"username": "alice"}
        await api(SEND_MESSAGE, {"roomId": rid(room), "text": "bye"}, alice)
        await events_of(client, op, 1)
        await client.close()
        await sync_to_async(User.objects.filter(pk=alice.pk).delete)()  # what deleteAccount does
        clear_caches()  # what the caches' 10-second time to live does

        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room), "after": hello["cursor"]})
        [bye] = await events_of(client, op, 1)
        assert bye["message"]["text"] == "bye" and bye["message"]["sender"] is None
        await client.close()
