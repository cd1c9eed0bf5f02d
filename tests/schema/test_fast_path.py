"""The subscription fast path (schema/live/fast_path.py): the same frames as Strawberry's
own path, byte for byte, on both protocols; per-viewer selections stay per viewer;
order and exactly-once hold when the two paths mix."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from asgiref.sync import sync_to_async

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


async def subscribe(user, protocol: str, query: str, room: Room, op_id: str = "sub") -> WSClient:
    client = WSClient(token=await sync_to_async(token_for)(user), protocol=protocol)
    ack = await client.connect()
    assert ack["type"] == "connection_ack", ack
    await client.subscribe(query, {"roomId": encode_id("Room", room.pk)}, op_id=op_id)
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
