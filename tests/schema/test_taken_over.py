"""Live subscriptions owned by the engine (chat.realtime ``Idle``/``DrivingSink``,
schema/live/fast_path.py): once a subscription is live and idle, Strawberry's
operation task ends and no task waits for it; the operation still counts, keeps
its id, stops on the client's word or the socket's end, and ends properly on
its own (a one-room subscription after the user left) or on a failing source."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import OperationalError

from chat import realtime, tokens
from chat.services import messages as message_services
from chat.services import rooms as room_services
from chat.tokens import REVOCATION_GROUP
from schema.live.consumer import SOCKET_USER_DEFERRED, GraphQLConsumer
from tests.clients import group_size
from tests.schema.test_subscriptions import (
    MESSAGE_ADDED,
    PROTOCOLS,
    ROOM_EVENTS,
    DroppingLayer,
    connect,
    events_of,
    rid,
    silent,
    texts,
    until_listening,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def settled(seconds: float = 0.3) -> int:
    """The number of tasks of the event loop once it has been quiet a moment."""
    await asyncio.sleep(seconds)
    return len(asyncio.all_tasks())


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestTakenOver:
    async def test_a_live_subscription_keeps_no_task(self, protocol, room, alice, bob):
        client = await connect(bob, protocol)
        first = await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        before = await settled()
        ops = [await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)}) for _ in range(3)]
        await until_listening(f"room.{room.pk}", 4)
        assert await settled() == before  # three more live subscriptions, not one task more
        await sync_to_async(message_services.send_message)(alice, room.pk, "to all four")
        got = {}
        for _ in range(4):
            message = await client.receive()
            got[message["id"]] = message["payload"]["data"]["messageAdded"]["message"]["text"]
        assert got == dict.fromkeys([first, *ops], "to all four")
        await client.close()

    async def test_stopping_leaves_the_group_and_frees_the_id(self, protocol, room, alice, bob):
        client = await connect(bob, protocol)
        op = await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)}, op_id="live")
        await until_listening(f"room.{room.pk}")
        await client.stop(op)
        if protocol == "graphql-ws":
            assert await client.receive() == {"type": "complete", "id": op}
        for _ in range(50):
            if await group_size(f"room.{room.pk}") == 0:
                break
            await asyncio.sleep(0.02)
        assert await group_size(f"room.{room.pk}") == 0
        await sync_to_async(message_services.send_message)(alice, room.pk, "nobody listens")
        await silent(client)
        again = await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)}, op_id="live")  # the id is free
        await until_listening(f"room.{room.pk}")
        await sync_to_async(message_services.send_message)(alice, room.pk, "heard")
        payload = await client.next(again)
        assert payload["data"]["messageAdded"]["message"]["text"] == "heard"
        await client.close()

    async def test_live_subscriptions_count_towards_the_limit(self, protocol, settings, room, bob):
        settings.WS_MAX_SUBSCRIPTIONS = 2
        client = await connect(bob, protocol)
        for _ in range(2):
            await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}", 2)
        third = await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)})
        refused = await client.receive()
        assert refused["type"] == "error" and refused["id"] == third, refused
        assert "Subscription limit reached" in str(refused["payload"])
        await client.close()

    async def test_a_one_room_subscription_completes_after_leaving(self, protocol, room, alice, bob):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await sync_to_async(message_services.send_message)(alice, room.pk, "before")
        await sync_to_async(room_services.leave_room)(bob, room.pk)
        events = await events_of(client, op, 2)
        assert [e["__typename"] for e in events] == ["MessageAdded", "MemberLeft"]
        done = await client.receive()
        assert done == {"type": "complete", "id": op}
        # The id is free again: the operation is over.
        await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)}, op_id=op)
        refused = await client.receive()
        assert refused["id"] == op and refused["type"] in {"error", "data", "next"}, refused
        await client.close()

    async def fail_while_filling_a_gap(self, client, op, monkeypatch, room, alice, error: Exception) -> None:
        """A gap to fill (a lost event) while reading the event log raises ``error``."""

        def failing(*args, **kwargs):
            raise error

        DroppingLayer(monkeypatch, lambda m: m["seq"] % 2 == 0)  # a gap, filled from the database...
        monkeypatch.setattr(realtime, "_events_after", failing)  # ...which fails
        for i in range(3):
            await sync_to_async(message_services.send_message)(alice, room.pk, f"m{i}")
        assert texts(await events_of(client, op, 1)) == ["m0"]

    async def test_a_database_failing_under_it_closes_the_socket_1013(self, protocol, monkeypatch, room, alice, bob):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await self.fail_while_filling_a_gap(
            client, op, monkeypatch, room, alice, OperationalError("connection refused")
        )
        assert await client.receive_close(timeout=10) == 1013  # reconnect and resume from the cursor

    async def test_a_failing_source_ends_with_a_typed_error(self, protocol, monkeypatch, room, alice, bob):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await self.fail_while_filling_a_gap(client, op, monkeypatch, room, alice, RuntimeError("a bug"))
        message = await client.receive(timeout=10)
        assert message["type"] in {"next", "data"} and message["payload"]["data"] is None, message
        assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == ["INTERNAL_SERVER_ERROR"]
        assert "a bug" not in str(message)
        assert await client.receive() == {"type": "complete", "id": op}
        await client.close()


def live_consumers() -> list[GraphQLConsumer]:
    gc.collect()
    return [o for o in gc.get_objects() if type(o) is GraphQLConsumer and not o._socket_closed]


@contextlib.asynccontextmanager
async def idle_subscribed_socket(user, protocol: str, room):
    """A socket of ``user`` with one live ``messageAdded`` subscription to ``room``
    (the process listening to the room), closed when the block ends."""
    client = await connect(user, protocol)
    await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscribed_socket_keeps_a_small_instance_dict(protocol, room, bob):
    """Idle memory: CPython shares the keys of its instances' dicts (a few hundred
    bytes each instead of about 1.6 KB) only up to 29 attributes."""
    async with idle_subscribed_socket(bob, protocol, room):
        consumers = live_consumers()
        assert consumers
        for consumer in consumers:
            assert len(vars(consumer)) <= 29, sorted(vars(consumer))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscribed_socket_keeps_neither_its_token_nor_its_frames(protocol, room, bob):
    """Idle memory (and the token): the decoded connection_init and subscribe frames
    go once handled; the operation keeps its query and variables, the context its
    connection parameters without the token."""
    async with idle_subscribed_socket(bob, protocol, room):
        gc.collect()
        kept = [
            o for o in gc.get_objects() if type(o) is dict and ("authToken" in o or o.get("query") == MESSAGE_ADDED)
        ]
        assert kept == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_initialised_socket_keeps_no_timer_of_its_connection_init(protocol, room, bob):
    """Idle memory: once connection_init has arrived, no task of its timeout (not even
    a cancelled one, which holds its traceback and frames) stays on the socket."""
    async with idle_subscribed_socket(bob, protocol, room):
        gc.collect()
        timers = [
            o
            for o in gc.get_objects()
            if isinstance(o, asyncio.Task)
            and getattr(o.get_coro(), "__name__", "") in ("handle_connection_init_timeout", "_close_unless_initialised")
        ]
        assert timers == []


async def test_an_idle_socket_holds_no_frame_of_the_entry_router(room, bob):
    """Idle memory: the application's entry (schema/live/drain.DrainGate, routing by
    protocol) hands back the routed application's coroutine instead of awaiting it,
    so a connection holds no suspended frame of it for its lifetime."""
    async with idle_subscribed_socket(bob, PROTOCOLS[0], room):
        gc.collect()
        suspended = {o.cr_code.co_qualname for o in gc.get_objects() if inspect.iscoroutine(o) and o.cr_frame}
        assert "URLRouter.__call__" in suspended  # the socket's own chain is seen
        assert not {"DrainGate.__call__", "ProtocolTypeRouter.__call__"} & suspended, suspended


async def test_signed_in_sockets_share_one_revocation_listener(room, alice, bob):
    """Idle memory: the process is in one revocation group with one listener, and
    knows its sockets by user (a dict entry each), whoever signed in; a revocation
    closes its user's sockets and no one else's."""
    async with (
        idle_subscribed_socket(bob, PROTOCOLS[0], room) as bobs,
        idle_subscribed_socket(alice, PROTOCOLS[1], room) as alices,
    ):
        hub = realtime.hub()
        assert len(hub.listeners[REVOCATION_GROUP]) == 1
        assert not [group for group in hub.listeners if group.startswith("auth.") and group != REVOCATION_GROUP]
        assert {user: len(sockets) for user, sockets in hub.signed_in.items()} == {bob.pk: 1, alice.pk: 1}
        await sync_to_async(tokens.revoke_all_tokens)(bob)
        assert await bobs.receive_close() == 4403
        assert await alices.nothing(0.3)
        assert set(hub.signed_in) == {alice.pk}
    assert realtime.hub().signed_in == {}
    assert REVOCATION_GROUP not in realtime.hub().listeners  # the last one gone, the process left


async def test_a_socket_holds_its_user_without_the_fields_it_does_not_need(room, bob):
    """Idle memory: a socket's user (held for its lifetime) is loaded without its
    password hash, email, bio and dates, which no subscription of its own reads;
    reading one loads it."""
    await sync_to_async(type(bob).objects.filter(pk=bob.pk).update)(email="bob@example.com", bio="Hi, I'm Bob.")
    async with idle_subscribed_socket(bob, PROTOCOLS[0], room):
        users = {id(c.scope["user"]): c.scope["user"] for c in live_consumers()}
        assert len(users) == 1
        [user] = users.values()
        assert set(SOCKET_USER_DEFERRED) <= user.get_deferred_fields()
        assert user.username == "bob" and user.is_active and not user.is_staff
        assert await sync_to_async(lambda: (user.email, user.bio))() == ("bob@example.com", "Hi, I'm Bob.")


async def test_mutations_over_the_socket_read_the_fields_its_user_defers(room, bob):
    """graphql-transport-ws runs mutations too: those that read the socket user's
    deferred fields (its password, email, dates) load them, and answer as over HTTP."""
    async with idle_subscribed_socket(bob, "graphql-transport-ws", room) as client:
        profile = await client.execute('mutation { updateProfile(input: {bio: "Hi"}) { bio email dateJoined } }')
        assert "errors" not in profile, profile
        assert profile["data"]["updateProfile"]["bio"] == "Hi"
        assert profile["data"]["updateProfile"]["email"] == "bob@example.com"
        assert profile["data"]["updateProfile"]["dateJoined"]
        change = 'mutation ($old: String) { changePassword(oldPassword: $old, newPassword: "a new long password 8") { token } }'
        wrong = await client.execute(change, {"old": "not the password"})
        assert wrong["errors"][0]["extensions"]["fields"] == {"oldPassword": ["Wrong password."]}, wrong
        await client.send(
            {
                "type": "subscribe",
                "id": "right",
                "payload": {"query": change, "variables": {"old": "correct horse battery"}},
            }
        )
        assert await client.receive_close() == 4403  # every token of the user ended, this socket's too
    assert await sync_to_async(lambda: type(bob).objects.get(pk=bob.pk).check_password("a new long password 8"))()


async def test_a_revocation_also_reaches_the_per_user_group_of_processes_not_yet_upgraded(bob):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(f"auth.{bob.pk}", channel)
    await sync_to_async(tokens.revoke_all_tokens)(bob)
    message = await asyncio.wait_for(layer.receive(channel), 2)
    assert (message["type"], message["user"]) == (tokens.AUTH_REVOKED_TYPE, bob.pk)
    await layer.group_discard(f"auth.{bob.pk}", channel)


async def test_sockets_share_their_unusable_channel_listening(room, bob, carol):
    """Idle memory: Strawberry's bookkeeping for listening to a socket's own channel
    (a dict, a Counter and a lock per socket) is one shared empty set here, where no
    socket has a channel; listening still refuses as Strawberry does."""
    async with idle_subscribed_socket(bob, PROTOCOLS[0], room), idle_subscribed_socket(carol, PROTOCOLS[1], room):
        consumers = live_consumers()
        assert len(consumers) == 2
        first, second = consumers
        assert first.listen_queues is second.listen_queues
        assert list(first.listen_queues["chat.event"]) == []
        assert first._group_refs is None and first._group_lock is None
        with pytest.raises(RuntimeError, match="Layers integration is required"):
            async with first.listen_to_channel("chat.event"):
                pass
        await first.dispatch({"type": "chat.event"})  # no queue listens: nothing happens


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_idle_socket_has_no_task_reading_its_frames(protocol, room, bob):
    """Idle memory: no task waits for a socket's next frame; one runs only while
    frames wait for the protocol handler."""
    async with idle_subscribed_socket(bob, protocol, room):
        await asyncio.sleep(0.2)
        readers = [
            task
            for task in asyncio.all_tasks()
            if getattr(task.get_coro(), "__qualname__", "") in ("GraphQLConsumer.run", "GraphQLConsumer.handle_frames")
        ]
        assert readers == []


async def test_a_received_frame_is_let_go_once_handled(monkeypatch, room, bob):
    """Channels' dispatch loop holds the last message it dispatched until the next
    arrives (on an idle socket, for good): the consumer empties it once handled."""
    received = []
    handle = GraphQLConsumer.websocket_receive

    async def spy(self, message):
        received.append(message)
        await handle(self, message)

    monkeypatch.setattr(GraphQLConsumer, "websocket_receive", spy)
    async with idle_subscribed_socket(bob, PROTOCOLS[0], room):
        assert len(received) == 2  # connection_init, subscribe
        assert received == [{}, {}]
