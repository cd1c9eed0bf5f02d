"""Subscriptions over HTTP, as an SSE (graphql-sse, distinct connections) or
multipart (Apollo) client does them, through the ASGI application: events,
resume with Last-Event-ID, errors, revocation, keep-alives and disconnects."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from chat import lifecycle
from chat.models import Room, User
from chat.services import messages as message_services
from schema.global_ids import encode_id
from schema.live import fast_path, http_stream
from tests.clients import MULTIPART_ACCEPT, SSE_ACCEPT, HttpStreamClient, listening, token_for, until_listening, watched

pytestmark = pytest.mark.django_db(transaction=True)

ROOM_EVENTS = """
subscription RoomEvents($roomId: ID, $after: String) {
  roomEvents(roomId: $roomId, after: $after) {
    __typename cursor seq
    ... on MessageAdded { message { text sender { username } } }
  }
}
"""
MESSAGE_ADDED = "subscription Added($roomId: ID) { messageAdded(roomId: $roomId) { seq message { text } } }"
REVOKE_ALL_TOKENS = "mutation RevokeAll { revokeAllTokens { revoked } }"

MODES = {"sse": SSE_ACCEPT, "multipart": MULTIPART_ACCEPT}


def rid(room: Room) -> str:
    return encode_id("Room", room.pk)


async def send(user: User, room: Room, text: str) -> None:
    # database_sync_to_async closes the worker thread's connection afterwards, as a request would.
    await database_sync_to_async(message_services.send_message)(user, room.pk, text)


async def subscribe(user: User | None, mode: str, query: str = ROOM_EVENTS, variables=None, **kwargs):
    token = await sync_to_async(token_for)(user) if user else None
    client = HttpStreamClient(query, variables, token=token, accept=MODES[mode], **kwargs)
    assert await client.start() == 200
    return client


def result_of(client: HttpStreamClient, message: dict) -> dict:
    """The GraphQL result a message carries, in either framing."""
    if client.multipart:
        return message["payload"]
    assert message["event"] == "next", message
    return message["data"]


async def next_event(client: HttpStreamClient) -> tuple[dict, dict]:
    message = await client.message()
    result = result_of(client, message)
    assert "errors" not in result, result
    return message, next(iter(result["data"].values()))


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_an_event_arrives(alice, bob, room, mode):
    client = await subscribe(alice, mode, variables={"roomId": rid(room)})
    if mode == "sse":
        assert client.headers["content-type"].startswith("text/event-stream")
    else:
        assert client.headers["content-type"].startswith("multipart/mixed")
    assert client.headers["x-accel-buffering"] == "no"
    await until_listening(f"room.{room.pk}")
    await send(bob, room, "hello over http")
    message, event = await next_event(client)
    assert event["__typename"] == "MessageAdded"
    assert event["message"] == {"text": "hello over http", "sender": {"username": "bob"}}
    if mode == "sse":
        assert message["id"] == event["cursor"]  # what EventSource sends back as Last-Event-ID
    await client.disconnect()


async def test_sse_over_get_as_eventsource_sends_it(alice, bob, room):
    client = await subscribe(alice, "sse", MESSAGE_ADDED, {"roomId": rid(room)}, method="GET")
    await until_listening(f"room.{room.pk}")
    await send(bob, room, "over GET")
    message, event = await next_event(client)
    assert event["message"]["text"] == "over GET" and message["id"]
    await client.disconnect()


async def test_subscribers_share_one_rendering_per_event(alice, bob, room, monkeypatch):
    executions = []
    execute = fast_path.execute_subscription_event
    monkeypatch.setattr(fast_path, "execute_subscription_event", lambda e: executions.append(1) or execute(e))
    clients = [await subscribe(alice, mode, variables={"roomId": rid(room)}) for mode in ("sse", "multipart", "sse")]
    await until_listening(f"room.{room.pk}", 3)
    await send(bob, room, "once")
    for client in clients:
        assert (await next_event(client))[1]["message"]["text"] == "once"
        await client.disconnect()
    assert len(executions) == 1


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_message_added(alice, bob, room, mode):
    client = await subscribe(alice, mode, MESSAGE_ADDED, {"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    await send(bob, room, "one")
    await send(bob, room, "two")
    texts = [(await next_event(client))[1]["message"]["text"] for _ in range(2)]
    assert texts == ["one", "two"]
    await client.disconnect()


async def test_last_event_id_resumes_exactly_once_in_order(alice, bob, room):
    first = await subscribe(alice, "sse", variables={"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    await send(bob, room, "m1")
    await send(bob, room, "m2")
    seen = [await next_event(first) for _ in range(2)]
    await first.disconnect()
    last_id = seen[-1][0]["id"]
    for text in ("m3", "m4", "m5"):
        await send(bob, room, text)
    # The reconnecting client repeats its request (and its original `after`: none) with Last-Event-ID.
    again = await subscribe(alice, "sse", variables={"roomId": rid(room)}, headers={"last-event-id": last_id})
    replayed = [await next_event(again) for _ in range(3)]
    assert [event["message"]["text"] for _, event in replayed] == ["m3", "m4", "m5"]
    seqs = [event["seq"] for _, event in seen + replayed]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    await until_listening(f"room.{room.pk}")
    await send(bob, room, "m6")
    _, live = await next_event(again)
    assert live["message"]["text"] == "m6" and live["seq"] == seqs[-1] + 1
    assert await again.nothing(0.3)  # no duplicate
    await again.disconnect()


async def test_multipart_resumes_with_after(alice, bob, room):
    first = await subscribe(alice, "multipart", variables={"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    await send(bob, room, "m1")
    _, seen = await next_event(first)
    await first.disconnect()
    await send(bob, room, "m2")
    await send(bob, room, "m3")
    again = await subscribe(alice, "multipart", variables={"roomId": rid(room), "after": seen["cursor"]})
    replayed = [(await next_event(again))[1] for _ in range(2)]
    assert [event["message"]["text"] for event in replayed] == ["m2", "m3"]
    assert [event["seq"] for event in replayed] == [seen["seq"] + 1, seen["seq"] + 2]
    assert await again.nothing(0.3)
    await again.disconnect()


async def test_a_bad_last_event_id_is_bad_user_input(alice, room):
    client = await subscribe(alice, "sse", variables={"roomId": rid(room)}, headers={"last-event-id": "garbage"})
    [message, done] = await client.until_end()
    assert message["data"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert done["event"] == "complete"


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_non_member_gets_not_found(carol, room, mode):
    client = await subscribe(carol, mode, variables={"roomId": rid(room)})
    messages = await client.until_end()
    result = result_of(client, messages[0])
    assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert result.get("data") is None
    if mode == "sse":
        assert messages[-1]["event"] == "complete"
    assert listening(f"room.{room.pk}") == 0


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_anonymous_gets_unauthenticated(room, mode):
    client = await subscribe(None, mode, variables={"roomId": rid(room)})
    messages = await client.until_end()
    assert result_of(client, messages[0])["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_invalid_operation_is_a_400_before_any_stream(alice, mode):
    token = await sync_to_async(token_for)(alice)
    client = HttpStreamClient("subscription { roomEvents { nope } }", token=token, accept=MODES[mode])
    assert await client.start() == 400
    body = await client.body()
    assert '"GRAPHQL_VALIDATION_FAILED"' in body and '"data"' not in body


async def test_too_expensive_is_query_too_complex(alice, settings):
    settings.GRAPHQL_MAX_COST = 1
    token = await sync_to_async(token_for)(alice)
    client = HttpStreamClient(ROOM_EVENTS, token=token, accept=SSE_ACCEPT)
    assert await client.start() == 400
    assert '"QUERY_TOO_COMPLEX"' in await client.body()


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_revocation_ends_the_stream(alice, room, mode):
    client = await subscribe(alice, mode, variables={"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    assert watched(alice.pk) == 1
    revoke = HttpStreamClient(REVOKE_ALL_TOKENS, token=await sync_to_async(token_for)(alice), accept="application/json")
    assert await revoke.start() == 200
    assert '"revoked"' in await revoke.body()
    messages = await client.until_end()
    assert result_of(client, messages[0])["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    await client.communicator.wait(timeout=5)
    assert listening(f"room.{room.pk}") == 0
    assert watched(alice.pk) == 0


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_disconnect_releases_the_subscription(alice, bob, room, mode):
    client = await subscribe(alice, mode, variables={"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    await client.disconnect()
    assert listening(f"room.{room.pk}") == 0
    assert watched(alice.pk) == 0
    await send(bob, room, "nobody listens")  # and nothing breaks


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_keep_alives(alice, room, mode, monkeypatch):
    monkeypatch.setattr(http_stream, "SSE_HEARTBEAT", 0.05)
    monkeypatch.setattr(http_stream, "MULTIPART_HEARTBEAT", 0.05)
    client = await subscribe(alice, mode, variables={"roomId": rid(room)})
    for _ in range(3):
        await client._read(2)
    assert client._take() is None
    assert client.heartbeats >= 2
    if mode == "sse":
        assert ":\n\n" in client.buffer or client.heartbeats >= 3
    await client.disconnect()


async def test_a_slow_reader_is_cut_off(alice, bob, room, monkeypatch):
    monkeypatch.setattr(http_stream, "MAX_QUEUED_FRAMES", 3)
    client = await subscribe(alice, "sse", variables={"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    stream = next(iter(http_stream_streams()))
    stream._wake.set = lambda: None  # the response stops taking frames, as a stuck client's would
    for i in range(5):
        await send(bob, room, f"m{i}")
    for _ in range(100):
        if stream._ended:
            break
        await asyncio.sleep(0.02)
    assert stream._ended
    await client.disconnect()
    assert listening(f"room.{room.pk}") == 0


def http_stream_streams():
    """The HTTP streams listening to a room (their sinks)."""
    from chat import realtime

    for listeners in realtime.hub().listeners.values():
        for listener in listeners:
            sink = getattr(getattr(listener, "__self__", None), "sink", None)
            if isinstance(sink, http_stream.HttpSubscription):
                yield sink


async def test_plain_post_of_a_subscription_stays_a_request_error(alice):
    token = await sync_to_async(token_for)(alice)
    client = HttpStreamClient(ROOM_EVENTS, token=token, accept="application/json")
    assert await client.start() == 400
    body = await client.body()
    assert "WebSocket" in body and "text/event-stream" in body


async def test_a_query_over_sse_is_one_event_then_complete(alice):
    token = await sync_to_async(token_for)(alice)
    client = HttpStreamClient("query { me { username } }", token=token, accept=SSE_ACCEPT)
    assert await client.start() == 200
    [message, done] = await client.until_end()
    assert message["data"] == {"data": {"me": {"username": "alice"}}}
    assert done["event"] == "complete"


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_a_stream_counts_in_the_metrics_while_open(alice, room, mode):
    from tests.test_metrics import scrape, value

    before = await sync_to_async(scrape)()
    client = await subscribe(alice, mode, variables={"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    during = await sync_to_async(scrape)()
    for gauge in ("chat_open_connections", "chat_open_subscriptions"):
        assert value(during, gauge, protocol=mode) == value(before, gauge, protocol=mode) + 1, gauge
    await client.disconnect()
    after = await sync_to_async(scrape)()
    for gauge in ("chat_open_connections", "chat_open_subscriptions"):
        assert value(after, gauge, protocol=mode) == value(before, gauge, protocol=mode), gauge


@pytest.mark.parametrize("mode", sorted(MODES))
async def test_a_draining_process_ends_its_streams_and_refuses_new_ones(alice, room, mode):
    client = await subscribe(alice, mode, variables={"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")
    try:
        await lifecycle.drain(0.2)
        messages = await client.until_end()
        assert not [m for m in messages if "errors" in str(m)]  # no error: the client reconnects elsewhere
        await client.communicator.wait(timeout=5)
        assert listening(f"room.{room.pk}") == 0
        token = await sync_to_async(token_for)(alice)
        refused = HttpStreamClient(ROOM_EVENTS, {"roomId": rid(room)}, token=token, accept=MODES[mode])
        assert await refused.start() == 503
        assert "SERVICE_UNAVAILABLE" in await refused.body()
    finally:
        lifecycle.reset()
