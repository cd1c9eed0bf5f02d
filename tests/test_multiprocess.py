"""Services mode: two daphne processes on one Redis and one Postgres.

A subscriber on process A receives what is sent through process B, and a
subscription resumed on the other process replays exactly what it missed.
Also measures the delivery latency (mutation sent -> frame received).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings

from chat.services import rooms as room_services
from schema.global_ids import encode_id
from tests.clients import token_for
from tests.live import daphne, database_url, migrate, server_env, wait_disconnected, wait_healthy

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
ROOM_EVENTS = """
subscription RoomEvents($roomId: ID, $after: String) {
  roomEvents(roomId: $roomId, after: $after) {
    __typename cursor seq createdAt ... on MessageAdded { message { text } }
  }
}
"""
SEND_MESSAGE = """
mutation Send($roomId: ID!, $text: String!) { sendMessage(input: {roomId: $roomId, text: $text}) { id } }
"""


@pytest.fixture
def servers(transactional_db, tmp_path):
    """Two daphne processes on the test database and the same Redis: their ports."""
    env = server_env(
        DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL, LOG_LEVEL="WARNING", RATE_LIMIT_SEND_MESSAGE="100000"
    )
    migration = migrate(env)
    assert migration.wait(timeout=120) == 0, migration.stderr.read().decode()
    try:
        with contextlib.ExitStack() as stack:
            started = [stack.enter_context(daphne(env, tmp_path / f"daphne-{n}.log")) for n in range(2)]
            for server in started:
                wait_healthy(server)
            yield [server.port for server in started]
    finally:
        wait_disconnected(env["DATABASE_URL"].rsplit("/", 1)[1])


def post_graphql(port: int, query: str, variables: dict, token: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql/",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"JWT {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


class Subscriber:
    """A graphql-transport-ws client on a live server (the `websockets` package)."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token

    async def __aenter__(self):
        from websockets.asyncio.client import connect

        self.ws = await connect(
            f"ws://127.0.0.1:{self.port}/graphql/",
            subprotocols=["graphql-transport-ws"],
            origin="http://127.0.0.1",
        )
        await self.ws.send(json.dumps({"type": "connection_init", "payload": {"authToken": self.token}}))
        assert json.loads(await self.ws.recv())["type"] == "connection_ack"
        return self

    async def subscribe(self, variables: dict) -> None:
        message = {"type": "subscribe", "id": "1", "payload": {"query": ROOM_EVENTS, "variables": variables}}
        await self.ws.send(json.dumps(message))

    async def event(self, timeout: float = 60) -> dict:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            return message["payload"]["data"]["roomEvents"]

    async def __aexit__(self, *exc):
        await self.ws.close()


async def until_in_group(group: str, count: int = 1) -> None:
    """Wait until ``count`` server processes are in ``group`` on Redis (a pub/sub
    subscription, or a member of the sorted-set layer's group)."""
    import redis.asyncio

    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"].get("prefix", "asgi")
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    try:
        for _ in range(250):
            [(_, subscribed)] = await client.pubsub_numsub(f"{prefix}__group__{group}")
            if subscribed + await client.zcard(f"{prefix}:group:{group}") >= count:
                await asyncio.sleep(0.3)  # and its positions are read
                return
            await asyncio.sleep(0.02)
    finally:
        await client.aclose()
    raise AssertionError(f"nobody joined {group}")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def test_cross_process_delivery_resume_and_latency(servers, alice, bob):
    # Sync test, async clients: every database access stays in this thread (no
    # leftover connection of a worker thread when the test database is dropped).
    room = room_services.create_room(alice, "lobby")
    room_services.join_room(bob, room.pk)
    asyncio.run(cross_process(servers, encode_id("Room", room.pk), room.pk, token_for(alice), token_for(bob)))


async def cross_process(servers: list[int], room_id: str, room_pk: int, alice_token: str, bob_token: str) -> None:
    port_a, port_b = servers

    async def send(port: int, text: str) -> float:
        started = time.perf_counter()
        await asyncio.to_thread(post_graphql, port, SEND_MESSAGE, {"roomId": room_id, "text": text}, alice_token)
        return (time.perf_counter() - started) * 1000

    # Subscriber on A, sender through B; latency from sending the mutation to the frame.
    latencies, mutation_times, from_event = [], [], []
    async with Subscriber(port_a, bob_token) as bob_ws:
        await bob_ws.subscribe({"roomId": room_id})
        await until_in_group(f"room.{room_pk}")
        for i in range(int(os.environ.get("REALTIME_LATENCY_SAMPLES", "40"))):
            started = time.perf_counter()
            sending = asyncio.ensure_future(send(port_b, f"live {i}"))
            event = await bob_ws.event()
            latencies.append((time.perf_counter() - started) * 1000)
            received_at = datetime.now(UTC)
            from_event.append((received_at - datetime.fromisoformat(event["createdAt"])).total_seconds() * 1000)
            mutation_times.append(await sending)
            assert event["message"]["text"] == f"live {i}"
        cursor = event["cursor"]
        last_seq = event["seq"]

    # Disconnected: 20 messages through A. Resume on B: all of them, in order, then live.
    for i in range(20):
        await send(port_a, f"missed {i}")
    async with Subscriber(port_b, bob_token) as bob_ws:
        await bob_ws.subscribe({"after": cursor})
        replayed = [await bob_ws.event() for _ in range(20)]
        assert [e["message"]["text"] for e in replayed] == [f"missed {i}" for i in range(20)]
        assert [e["seq"] for e in replayed] == list(range(last_seq + 1, last_seq + 21))
        await send(port_a, "live again")
        event = await bob_ws.event()
        assert (event["message"]["text"], event["seq"]) == ("live again", last_seq + 21)

    report = (
        f"delivery latency over 2 processes (sendMessage POSTed to B -> frame on A's socket), n={len(latencies)}: "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
        f"max {max(latencies):.1f} ms; the HTTP mutation alone: p50 {statistics.median(mutation_times):.1f} ms, "
        f"p99 {percentile(mutation_times, 99):.1f} ms; event row written -> frame: "
        f"p50 {statistics.median(from_event):.1f} ms, p99 {percentile(from_event, 99):.1f} ms"
    )
    print(report)
    (ROOT / ".pytest_cache").mkdir(exist_ok=True)
    (ROOT / ".pytest_cache" / "realtime-latency.txt").write_text(report + "\n")


MODERATED_EVENTS = """
subscription { roomEvents { __typename room { id } ... on MessageAdded { message { text } }
  ... on MemberLeft { user { username } reason } } }
"""
BAN_MEMBER = "mutation Ban($roomId: ID!, $userId: ID!) { banMember(roomId: $roomId, userId: $userId) { id } }"


def test_a_ban_through_one_process_ends_the_subscription_on_the_other(servers, alice, bob):
    room = room_services.create_room(alice, "lobby")
    other = room_services.create_room(alice, "elsewhere")
    for joined in (room, other):
        room_services.join_room(bob, joined.pk)
    ids = {"room": encode_id("Room", room.pk), "other": encode_id("Room", other.pk), "bob": encode_id("User", bob.pk)}
    asyncio.run(ban_across_processes(servers, ids, room.pk, token_for(alice), token_for(bob)))


async def ban_across_processes(servers: list[int], ids: dict, room_pk: int, alice_token: str, bob_token: str) -> None:
    port_a, port_b = servers

    async def events(subscriber: Subscriber) -> dict:
        while True:
            event = await subscriber.event()
            if event["__typename"] != "PresenceChanged":
                return event

    async with Subscriber(port_a, bob_token) as bob_ws:
        subscribe = {"type": "subscribe", "id": "1", "payload": {"query": MODERATED_EVENTS, "variables": {}}}
        await bob_ws.ws.send(json.dumps(subscribe))
        await until_in_group(f"room.{room_pk}")
        await asyncio.to_thread(
            post_graphql, port_b, BAN_MEMBER, {"roomId": ids["room"], "userId": ids["bob"]}, alice_token
        )
        last = await events(bob_ws)
        assert (last["__typename"], last["room"]["id"]) == ("MemberLeft", ids["room"])
        assert (last["user"], last["reason"]) == ({"username": "bob"}, "BANNED")
        for room_id, text in ((ids["room"], "not for bob"), (ids["other"], "for bob")):
            await asyncio.to_thread(post_graphql, port_b, SEND_MESSAGE, {"roomId": room_id, "text": text}, alice_token)
        event = await events(bob_ws)
        assert (event["room"]["id"], event["message"]["text"]) == (ids["other"], "for bob")
