"""Faults under load, in services mode: two daphne processes whose Postgres and
Redis are reached through TCP proxies (tests/live.py), 200 subscribers of one
room spread over both, two senders posting ``sendMessage`` steadily with a
``clientId`` (a failed send is retried with the same one, so a retry never
doubles a message). In turn, on the same subscribers: Redis goes away for a
moment and comes back, then Postgres, then one process is killed with SIGKILL.

Subscribers whose socket closes reconnect (to the survivor, after the kill) and
resume with the last cursor they received. After each fault every subscriber
must hold exactly the acknowledged messages, each once, in ``seq`` order without
a gap, and no subscription may have ended with an error (a service failure
closes the socket with 1013, which clients retry); at the end, exactly what is
stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import websockets

from chat.cursors import encode_cursor
from chat.models import Event, User
from chat.services import rooms as room_services
from schema.global_ids import encode_id
from tests.clients import token_for
from tests.live import Daphne, TCPProxy, daphne, proxied_env, service_proxies, wait_disconnected, wait_healthy

pytestmark = [pytest.mark.services, pytest.mark.slow]

SUBSCRIBERS = 200
SUBSCRIBING_USERS = 20
MESSAGES_PER_SENDER = 25  # per phase
SEND_INTERVAL = 0.05  # seconds between a sender's acknowledged sends
OUTAGE = 1.5  # seconds Redis or Postgres stays down
SETTLE_TIMEOUT = 45  # seconds for every subscriber to catch up once the senders are done

ROOM_EVENTS = (
    "subscription Events($room: ID, $after: String) { roomEvents(roomId: $room, after: $after) "
    "{ __typename cursor seq ... on MessageAdded { message { text } } } }"
)
SEND = (
    "mutation Send($room: ID!, $text: String!, $key: String) "
    "{ sendMessage(input: {roomId: $room, text: $text, clientId: $key}) { id text } }"
)


@dataclass
class Load:
    """What the clients share: the servers still up, the room, and what was acknowledged."""

    ports: list[int]
    room: str
    start_cursor: str
    stopping: bool = False
    subscribing: asyncio.Event = field(default_factory=asyncio.Event)
    acknowledged: dict[str, str] = field(default_factory=dict)  # clientId -> text
    send_failures: Counter = field(default_factory=Counter)

    def port(self, index: int) -> int:
        return self.ports[index % len(self.ports)]


class Subscriber:
    """One graphql-transport-ws socket subscribed to the room: it records every
    stored event it receives and, whenever its socket ends, reconnects and resumes
    from the last cursor it received."""

    def __init__(self, index: int, token: str, load: Load):
        self.index, self.token, self.load = index, token, load
        self.cursor = load.start_cursor
        self.events: list[tuple[int, str, str | None]] = []  # (seq, __typename, text)
        self.connected = asyncio.Event()
        self.endings: Counter = Counter()  # why the socket ended: close codes, errors
        self.attempt = 0
        self.port: int | None = None  # of the server it is (or was last) connected to

    @property
    def texts(self) -> set[str]:
        return {text for _, kind, text in self.events if kind == "MessageAdded"}

    async def run(self) -> None:
        while not self.load.stopping:
            self.port = self.load.port(self.index + self.attempt)
            self.attempt += 1
            try:
                await self._session(self.port)
            except websockets.ConnectionClosed as closed:
                self.endings[f"closed {closed.rcvd.code if closed.rcvd else 'abnormally'}"] += 1
            except websockets.InvalidStatus as refused:
                self.endings[f"refused {refused.response.status_code}"] += 1
            except (OSError, TimeoutError, websockets.InvalidHandshake) as error:
                self.endings[type(error).__name__] += 1  # e.g. connection refused after the kill
            if not self.load.stopping:
                await asyncio.sleep(0.2 + random.random() * 0.3)  # the clients do not come back in one burst

    async def _session(self, port: int) -> None:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/graphql/",
            subprotocols=["graphql-transport-ws"],
            origin="http://127.0.0.1",
            open_timeout=20,
            ping_interval=None,
            max_queue=None,
        ) as socket_:
            await socket_.send(json.dumps({"type": "connection_init", "payload": {"authToken": self.token}}))
            ack = json.loads(await asyncio.wait_for(socket_.recv(), 20))
            if ack["type"] != "connection_ack":
                self.endings[f"init {ack}"] += 1
                return
            self.connected.set()
            await self.load.subscribing.wait()  # presence changes of the others' first connections are not the point
            variables = {"room": self.load.room, "after": self.cursor}
            subscribe = {"type": "subscribe", "id": "1", "payload": {"query": ROOM_EVENTS, "variables": variables}}
            await socket_.send(json.dumps(subscribe))
            async for frame in socket_:
                message = json.loads(frame)
                if message["type"] == "ping":
                    await socket_.send(json.dumps({"type": "pong"}))
                elif message["type"] == "next" and not message["payload"].get("errors"):
                    event = message["payload"]["data"]["roomEvents"]
                    if event["seq"] is not None:
                        text = event["message"]["text"] if event["__typename"] == "MessageAdded" else None
                        self.events.append((event["seq"], event["__typename"], text))
                    self.cursor = event["cursor"]
                elif message["type"] != "pong":
                    # An error or a completion ends the subscription for good (graphql-ws
                    # clients retry after a close, not after an error): recorded as a failure.
                    self.endings[f"{message['type']} {json.dumps(message.get('payload'))[:200]}"] += 1
                    return


def post(port: int, query: str, variables: dict, token: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        body = json.dumps({"query": query, "variables": variables})
        connection.request(
            "POST", "/graphql/", body, {"Content-Type": "application/json", "Authorization": f"JWT {token}"}
        )
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


async def sender(
    load: Load, name: str, token: str, index: int, count: int = MESSAGES_PER_SENDER, timeout: float = 60
) -> None:
    """Send ``count`` messages, one after the other, each retried (same clientId)
    until acknowledged: a response with data and no error."""
    deadline = time.monotonic() + timeout
    for n in range(count):
        key, text = f"{name}-{n}", f"{name} {n}"
        attempt = 0
        while True:
            port = load.port(index + n + attempt)
            attempt += 1
            try:
                body = await asyncio.to_thread(post, port, SEND, {"room": load.room, "text": text, "key": key}, token)
            except (OSError, http.client.HTTPException, ValueError) as error:
                load.send_failures[type(error).__name__] += 1
            else:
                if not body.get("errors") and (body.get("data") or {}).get("sendMessage"):
                    assert body["data"]["sendMessage"]["text"] == text, body
                    load.acknowledged[key] = text
                    break
                load.send_failures[",".join(e.get("extensions", {}).get("code", "?") for e in body["errors"])] += 1
            assert time.monotonic() < deadline, f"{name}: {text!r} never acknowledged ({dict(load.send_failures)})"
            await asyncio.sleep(0.2)
        await asyncio.sleep(SEND_INTERVAL)


@dataclass
class World:
    room_pk: int
    room: str
    start_seq: int
    subscriber_tokens: list[str]
    sender_tokens: list[str]


def build_world() -> World:
    """A public room with SUBSCRIBING_USERS members, each with several sockets (the
    subscribers), and two more members who send (no password hashing: everyone
    signs in with tokens). Several sockets per user keep the presence changes of a
    mass reconnection (one per user, to every subscriber) from swamping the run."""
    owner = User.objects.create_user(username="owner", email="owner@example.com")
    room = room_services.create_room(owner, "under-load")
    names = [f"member{n}" for n in range(SUBSCRIBING_USERS)] + ["sender-a", "sender-b"]
    users = User.objects.bulk_create(User(username=name, email=f"{name}@example.com", password="!") for name in names)
    for user in users:
        room_services.join_room(user, room.pk)
    tokens = [token_for(user) for user in users]
    room.refresh_from_db()
    subscriber_tokens = [tokens[n % SUBSCRIBING_USERS] for n in range(SUBSCRIBERS)]
    return World(room.pk, encode_id("Room", room.pk), room.last_seq, subscriber_tokens, tokens[SUBSCRIBING_USERS:])


def stored_stream(world: World) -> list[tuple[int, str, str | None]]:
    """The room's stored events after the start, as a subscriber should have received them."""
    events = Event.objects.filter(room_id=world.room_pk, seq__gt=world.start_seq).order_by("seq")
    return [
        (event.seq, event.kind, event.payload["message"]["text"] if event.kind == "MessageAdded" else None)
        for event in events
    ]


@contextlib.contextmanager
def two_servers(pg: TCPProxy, redis: TCPProxy, tmp_path):
    env = proxied_env(
        pg,
        redis,
        LOG_LEVEL="WARNING",
        REALTIME_CHECK_INTERVAL="1",
        RATE_LIMIT_SEND_MESSAGE="100000",
    )
    try:
        with contextlib.ExitStack() as stack:
            with ThreadPoolExecutor(2) as pool:  # started side by side: a daphne takes seconds to start
                servers = list(
                    pool.map(lambda n: stack.enter_context(daphne(env, tmp_path / f"daphne-{n}.log")), (0, 1))
                )
            for server in servers:
                wait_healthy(server)
            yield servers
    finally:
        wait_disconnected(env["DATABASE_URL"].rsplit("/", 1)[1])


class Run:
    """The subscribers of a world on two servers, and the load phases run against them."""

    def __init__(self, world: World, servers: list[Daphne]):
        self.world = world
        self.load = Load(
            ports=[server.port for server in servers],
            room=world.room,
            start_cursor=encode_cursor({world.room_pk: world.start_seq}),
        )
        self.subscribers = [Subscriber(n, token, self.load) for n, token in enumerate(world.subscriber_tokens)]
        self.timings: dict[str, float] = {}
        self.report: list[str] = []

    async def __aenter__(self) -> Run:
        self.tasks = [asyncio.create_task(subscriber.run()) for subscriber in self.subscribers]
        started = time.monotonic()
        async with asyncio.timeout(60):
            await asyncio.gather(*(subscriber.connected.wait() for subscriber in self.subscribers))
        self.timings["connect"] = time.monotonic() - started
        # Every subscription is live once it has delivered a first message.
        started = time.monotonic()
        self.load.subscribing.set()
        await sender(self.load, "warm-up", self.world.sender_tokens[0], 0, count=1)
        async with asyncio.timeout(60):
            while any(not subscriber.events for subscriber in self.subscribers):
                await asyncio.sleep(0.05)
        self.timings["subscribe"] = time.monotonic() - started
        return self

    async def __aexit__(self, *exc) -> None:
        self.load.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def phase(self, name: str, fault) -> tuple[int, Counter]:
        """Both senders send; ``fault(load)`` runs once a third of the phase is
        acknowledged; then every subscriber must catch up with exactly what was
        acknowledged so far."""
        load = self.load
        failures_before = sum(load.send_failures.values())
        endings_before = sum((s.endings for s in self.subscribers), Counter())
        before = len(load.acknowledged)
        started = time.monotonic()
        senders = [
            asyncio.create_task(sender(load, f"{name}-{who}", token, n))
            for n, (who, token) in enumerate(zip("ab", self.world.sender_tokens, strict=True))
        ]
        try:
            async with asyncio.timeout(60):
                while len(load.acknowledged) < before + 2 * MESSAGES_PER_SENDER // 3:
                    await asyncio.sleep(0.05)
            await fault(load)
        finally:
            await asyncio.gather(*senders)
        self.timings[f"{name} send"] = time.monotonic() - started

        started = time.monotonic()
        expected = set(load.acknowledged.values())
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline and any(not expected <= s.texts for s in self.subscribers):
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # a duplicate or a stray event would arrive now
        self.timings[f"{name} settle"] = time.monotonic() - started
        failures = sum(load.send_failures.values()) - failures_before
        endings = sum((s.endings for s in self.subscribers), Counter()) - endings_before
        self.report.append(f"{name}: {failures} failed sends, socket endings {dict(endings)}")
        self.check(name)
        return failures, endings

    def check(self, name: str) -> None:
        """Each subscriber holds the acknowledged messages, each once, in seq order
        without a gap, and no subscription ended otherwise than by its socket closing
        (a service failure closes with 1013), nor was a handshake refused with an error."""
        endings = sum((s.endings for s in self.subscribers), Counter())
        failures = {
            ending: n for ending, n in endings.items() if not ending.startswith(("closed", "ConnectionRefused"))
        }
        assert not failures, f"after {name}, subscriptions ended badly: {failures} ({self.summary()})"
        acknowledged = Counter(self.load.acknowledged.values())
        first = self.world.start_seq + 1
        problems = []
        for subscriber in self.subscribers:
            seqs = [seq for seq, _, _ in subscriber.events]
            received = Counter(text for _, _, text in subscriber.events)
            if seqs == list(range(first, first + len(seqs))) and received == acknowledged:
                continue
            problems.append(
                f"subscriber {subscriber.index} ({len(seqs)} events, socket endings {dict(subscriber.endings)}): "
                f"missing {sorted(acknowledged - received)[:5]} ({sum((acknowledged - received).values())}), "
                f"duplicated or unacknowledged {sorted(received - acknowledged)[:5]}, "
                f"seq gaps or disorder at {[b for a, b in itertools.pairwise(seqs) if b != a + 1][:5]}"
            )
        assert not problems, (
            f"after {name}, {len(problems)} of {len(self.subscribers)} subscribers differ from the "
            f"{len(acknowledged)} acknowledged messages ({self.summary()}):\n" + "\n".join(problems[:20])
        )

    def summary(self) -> str:
        timings = ", ".join(f"{key} {value:.1f}s" for key, value in self.timings.items())
        return f"{'; '.join(self.report)}; timings {timings}"


@pytest.fixture
def proxies(transactional_db):
    with service_proxies() as both:
        yield both


def test_redis_restart_postgres_restart_and_a_killed_process_under_load(proxies, tmp_path):
    """One load, three faults in turn (each a phase of both senders' messages): Redis
    down and up, Postgres down and up, then the process with more subscribers killed."""
    pg, redis = proxies
    world = build_world()
    with two_servers(pg, redis, tmp_path) as servers:
        sent_while_down: dict[str, int] = {}

        def outage(name: str, proxy: TCPProxy):
            async def fault(load: Load) -> None:
                before = len(load.acknowledged)
                await asyncio.to_thread(proxy.down)
                await asyncio.sleep(OUTAGE)
                await asyncio.to_thread(proxy.up)
                sent_while_down[name] = len(load.acknowledged) - before

            return fault

        def kill(victim: Daphne, survivor: Daphne):
            async def fault(load: Load) -> None:
                load.ports = [survivor.port]  # new connections and sends go to the survivor from now on
                victim.process.kill()
                await asyncio.to_thread(victim.process.wait)

            return fault

        async def scenario() -> tuple[Run, Daphne]:
            async with Run(world, servers) as run:
                # Each fault really happened under the load: sends acknowledged while Redis
                # was down (published to nobody), sends failed while Postgres was down...
                await run.phase("redis", outage("redis", redis))
                assert sent_while_down["redis"] > 0, run.summary()
                failures, _ = await run.phase("postgres", outage("postgres", pg))
                assert failures > 0, run.summary()
                # ... and the process with more of the subscribers is killed.
                on = {server.port: sum(1 for s in run.subscribers if s.port == server.port) for server in servers}
                victim, survivor = sorted(servers, key=lambda server: on[server.port], reverse=True)
                _, endings = await run.phase("kill", kill(victim, survivor))
                assert SUBSCRIBERS // 2 <= on[victim.port] <= endings.total(), (on, run.summary())
            return run, survivor

        run, survivor = asyncio.run(scenario())
        assert survivor.process.poll() is None
    print(run.summary())
    # What every subscriber received is exactly what is stored.
    stored = stored_stream(world)
    assert all(subscriber.events == stored for subscriber in run.subscribers), (len(stored), run.summary())
