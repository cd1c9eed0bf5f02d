"""The subscription fast path (schema/live/fast_path.py): the same frames as Strawberry's
own path, byte for byte, on both protocols; per-viewer selections stay per viewer;
order and exactly-once hold when the two paths mix."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from asgiref.sync import sync_to_async

from chat import realtime
from chat.cursors import decode_cursor
from chat.events import room_group
from chat.models import Room
from chat.services import messages as message_services
from chat.services import rooms as room_services
from schema.global_ids import encode_id
from schema.live import fast_path
from tests.clients import WSClient, listening, token_for

pytestmark = pytest.mark.django_db(transaction=True)

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]

# The benchmark's subscription: every field viewer-independent.
SHARED = """subscription RoomEvents($roomId: ID!) {
  roomEvents(roomId: $roomId) {
    __typename cursor seq
    ... on MessageAdded { message { id text createdAt sender { id username } } }
  }
}"""

# myRole depends on who asks. (__typename lets ``frames`` skip the PresenceChanged of the
# subscribers' own sockets, which also carry a room.)
MESSAGE_ADDED = """subscription MessageAdded($roomId: ID) {
  messageAdded(roomId: $roomId) { seq message { text } }
}"""

PER_VIEWER = """subscription RoomEvents($roomId: ID!) {
  roomEvents(roomId: $roomId) { __typename seq room { id myRole } }
}"""


@pytest.fixture
def room(make_user):
    owner = make_user("olga")
    created = room_services.create_room(owner, "lobby")
    members = [make_user(name) for name in ("fast1", "fast2", "slow")]
    for member in members:
        room_services.join_room(member, created.pk)
    return Room.objects.get(pk=created.pk), owner, members


@pytest.fixture
def fast_calls(monkeypatch):
    """Stored events the fast path sent shared (True) or declined (False); the user
    ``slow`` never gets one. (Ephemeral events are rendered per subscriber.)"""
    calls: list[bool] = []
    original_for_operation = fast_path.FastPath.for_operation.__func__
    original_call = fast_path.FastPath.deliver

    def for_operation(cls, info):
        return None if info.context.user.username == "slow" else original_for_operation(cls, info)

    async def call(self, delivery):
        sent = await original_call(self, delivery)
        if delivery.seq is not None:
            calls.append(sent)
        return sent

    monkeypatch.setattr(fast_path.FastPath, "for_operation", classmethod(for_operation))
    monkeypatch.setattr(fast_path.FastPath, "deliver", call)
    return calls


async def subscribe(user, protocol: str, query: str, room: Room | None, op_id: str = "sub") -> WSClient:
    """A socket of ``user`` subscribed to ``query`` for ``room`` (None: all their rooms)."""
    client = WSClient(token=await sync_to_async(token_for)(user), protocol=protocol)
    ack = await client.connect()
    assert ack["type"] == "connection_ack", ack
    await client.subscribe(query, {"roomId": encode_id("Room", room.pk)} if room else {}, op_id=op_id)
    return client


async def frames(client: WSClient, n: int) -> list[str]:
    """The next ``n`` data frames, as the raw text sent (presence and keep-alives skipped)."""
    texts = []
    while len(texts) < n:
        output = await client.communicator.receive_output(timeout=5)
        assert output["type"] == "websocket.send", output
        message = json.loads(output["text"])
        if message.get("type") in {"next", "data"} and "PresenceChanged" not in output["text"]:
            texts.append(output["text"])
    return texts


async def until_subscribed(room: Room, count: int) -> None:
    for _ in range(200):
        if listening(room_group(room.pk)) >= count:
            await asyncio.sleep(0.2)  # positions read
            return
        await asyncio.sleep(0.02)
    raise AssertionError("subscribers did not join")


@contextlib.asynccontextmanager
async def subscribed(room: Room, protocol: str, query: str, users: list):
    """One socket per user, each subscribed to ``query`` for ``room``, closed on exit."""
    clients = [await subscribe(user, protocol, query, room) for user in users]
    try:
        await until_subscribed(room, len(clients))
        yield clients
    finally:
        for client in clients:
            await client.close()


def send(room: Room, user, text: str):
    return sync_to_async(message_services.send_message)(user, room.pk, text)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_fast_frames_are_strawberrys_frames_byte_for_byte(protocol, room, fast_calls):
    room, owner, (fast1, fast2, slow) = room
    async with subscribed(room, protocol, SHARED, [fast1, fast2, slow]) as clients:
        for i in range(3):
            await send(room, owner, f"hello {i}")
        received = [await frames(client, 3) for client in clients]
        assert received[0] == received[1] == received[2]  # two fast, one Strawberry's own
        assert any(fast_calls)
        events = [json.loads(text)["payload"]["data"]["roomEvents"] for text in received[2]]
        assert [e["message"]["text"] for e in events] == ["hello 0", "hello 1", "hello 2"]
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_viewer_dependent_fields_are_rendered_per_viewer(protocol, room, fast_calls):
    room, owner, (fast1, _, _) = room
    async with subscribed(room, protocol, PER_VIEWER, [owner, fast1]) as clients:
        await send(room, owner, "who am I")
        roles = [json.loads((await frames(client, 1))[0])["payload"]["data"]["roomEvents"] for client in clients]
        assert [r["room"]["myRole"] for r in roles] == ["OWNER", "MEMBER"]
        assert fast_calls and all(fast_calls)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_burst_arrives_once_and_in_order_on_both_paths(protocol, room, fast_calls):
    room, owner, (fast1, fast2, slow) = room
    async with subscribed(room, protocol, SHARED, [fast1, fast2, slow]) as clients:
        await asyncio.gather(*(send(room, owner, f"burst {i}") for i in range(12)))
        for client in clients:
            events = [json.loads(t)["payload"]["data"]["roomEvents"] for t in await frames(client, 12)]
            seqs = [e["seq"] for e in events]
            assert seqs == sorted(seqs) and len(set(seqs)) == 12
            assert sorted(e["message"]["text"] for e in events) == sorted(f"burst {i}" for i in range(12))
            assert await client.nothing(0.3)
        assert any(fast_calls)


ALL_ROOMS = """subscription {
  roomEvents { __typename cursor seq ... on MessageAdded { message { id text sender { username } } } }
}"""


@pytest.fixture
def renders(monkeypatch):
    """The executions of a selection on an event made by the fast path."""
    calls: list[int | None] = []
    original = fast_path.execute_event

    async def counted(executor, context, delivery):
        calls.append(delivery.seq)
        return await original(executor, context, delivery)

    monkeypatch.setattr(fast_path, "execute_event", counted)
    return calls


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_all_rooms_subscribers_at_different_cursors_share_one_rendering(
    protocol, room, make_user, fast_calls, renders
):
    """Users in different sets of rooms hold different cursors for the same event:
    it is rendered once all the same, and each frame carries its own cursor,
    byte for byte what Strawberry sends for it."""
    room, owner, (fast1, fast2, slow) = room
    elsewhere = await sync_to_async(room_services.create_room)(fast1, "elsewhere")
    await send(elsewhere, fast1, "a position of its own")
    clients = [await subscribe(user, protocol, ALL_ROOMS, None) for user in (fast1, fast2, slow)]
    try:
        await until_subscribed(room, 3)
        renders.clear()
        await send(room, owner, "to every cursor")
        got = [(await frames(client, 1))[0] for client in clients]
        events = [json.loads(text)["payload"]["data"]["roomEvents"] for text in got]
        assert {e["message"]["text"] for e in events} == {"to every cursor"}
        seq = events[0]["seq"]
        elsewhere_seq = await sync_to_async(lambda: Room.objects.get(pk=elsewhere.pk).last_seq)()
        assert decode_cursor(events[0]["cursor"]) == {room.pk: seq, elsewhere.pk: elsewhere_seq}
        assert decode_cursor(events[1]["cursor"]) == {room.pk: seq}
        assert got[1] == got[2]  # fast2's shared frame is Strawberry's frame for slow (same rooms)
        assert got[0] != got[1]  # fast1's carries its own cursor
        assert fast_calls == [True, True]
        assert renders == [seq]  # one rendering for both cursors
    finally:
        for client in clients:
            await client.close()


async def test_subscribers_of_both_protocols_and_any_operation_ids_share_one_rendering(room, fast_calls, renders):
    """One rendering of an event goes out in each subscriber's own frame: its
    protocol's message type and its own operation id, byte for byte Strawberry's."""
    room, owner, (fast1, fast2, slow) = room
    clients = [
        await subscribe(fast1, "graphql-transport-ws", SHARED, room, op_id="1"),
        await subscribe(fast2, "graphql-ws", SHARED, room, op_id="1"),
        await subscribe(slow, "graphql-ws", SHARED, room, op_id="1"),
        await subscribe(fast2, "graphql-ws", SHARED, room, op_id="other"),
    ]
    try:
        await until_subscribed(room, len(clients))
        renders.clear()
        await send(room, owner, "one rendering")
        got = [(await frames(client, 1))[0] for client in clients]
        heads = [(json.loads(text)["id"], json.loads(text)["type"]) for text in got]
        assert heads == [("1", "next"), ("1", "data"), ("1", "data"), ("other", "data")]
        assert len({json.dumps(json.loads(text)["payload"]) for text in got}) == 1
        assert got[1] == got[2]  # fast2's shared frame is Strawberry's frame for slow
        assert fast_calls == [True, True, True]
        assert len(renders) == 1
    finally:
        for client in clients:
            await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_event_a_subscription_does_not_select_is_passed_without_waking_it(
    protocol, room, monkeypatch, fast_calls
):
    """messageAdded does not deliver edits: a live one passes them where they arrive,
    as its own path would, and no task is made to resume it."""
    room, owner, (fast1, _, _) = room
    woken = []
    original = realtime.RoomStream._drive

    async def drive(self):
        woken.append(self)
        await original(self)

    monkeypatch.setattr(realtime.RoomStream, "_drive", drive)
    async with subscribed(room, protocol, MESSAGE_ADDED, [fast1]) as (client,):
        first = await send(room, owner, "first")
        assert json.loads((await frames(client, 1))[0])["payload"]["data"]["messageAdded"]["message"]["text"] == "first"
        await asyncio.sleep(0.2)
        woken.clear()
        await sync_to_async(message_services.edit_message)(owner, first.pk, "first, edited")
        await send(room, owner, "second")
        second = json.loads((await frames(client, 1))[0])["payload"]["data"]["messageAdded"]
        assert second["message"]["text"] == "second"
        assert woken == []
        assert fast_calls == [True, True]  # both messages, on the live path
        assert await client.nothing(0.3)
