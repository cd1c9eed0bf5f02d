"""Services mode: SIGTERM drains a live daphne while another keeps serving.

Subscribers on process A, a sender sending steadily through process B; A gets
SIGTERM. A's readiness fails at once, its sockets are closed with 1012 spread
over the drain period, each subscriber reconnects to B with its last cursor and
none loses or repeats an event, and A exits by itself within the drain period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from chat.services import rooms as room_services
from schema.global_ids import encode_id
from schema.live.drain import EXIT_MARGIN
from tests.clients import token_for
from tests.live import daphne, migrate, server_env
from tests.test_multiprocess import (
    ROOM_EVENTS,
    SEND_MESSAGE,
    database_url,
    post_graphql,
    until_in_group,
    wait_disconnected,
    wait_healthy,
)

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DRAIN_SECONDS = 3.0
SUBSCRIBERS = 6


@pytest.fixture
def two_servers(transactional_db, tmp_path):
    env = server_env(
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        LOG_LEVEL="WARNING",
        RATE_LIMIT_SEND_MESSAGE="100000",
        SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS),
    )
    migration = migrate(env)
    assert migration.wait(timeout=120) == 0, migration.stderr.read().decode()
    try:
        with contextlib.ExitStack() as stack:
            started = [stack.enter_context(daphne(env, tmp_path / f"daphne-{n}.log")) for n in range(2)]
            for server in started:
                wait_healthy(server)
            yield started
    finally:
        wait_disconnected(env["DATABASE_URL"].rsplit("/", 1)[1])


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def exit_time(process, loop) -> float:
    """When ``process`` exits (polled every 20 ms, whatever else the test is waiting for)."""
    while process.poll() is None:
        await asyncio.sleep(0.02)
    return loop.time()


def test_sigterm_drains_subscribers_to_the_other_process(two_servers, alice, bob):
    room = room_services.create_room(alice, "lobby")
    room_services.join_room(bob, room.pk)
    asyncio.run(drain_scenario(two_servers, encode_id("Room", room.pk), room.pk, token_for(alice), token_for(bob)))


async def drain_scenario(servers, room_id: str, room_pk: int, alice_token: str, bob_token: str) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    a, b = servers
    loop = asyncio.get_running_loop()

    async def open_subscription(port: int, cursor: str | None):
        ws = await connect(
            f"ws://127.0.0.1:{port}/graphql/", subprotocols=["graphql-transport-ws"], origin="http://127.0.0.1"
        )
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authToken": bob_token}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        variables = {"roomId": room_id, **({"after": cursor} if cursor else {})}
        await ws.send(
            json.dumps({"type": "subscribe", "id": "1", "payload": {"query": ROOM_EVENTS, "variables": variables}})
        )
        return ws

    class Subscriber:
        def __init__(self):
            self.received: list[tuple[int, str]] = []
            self.cursor: str | None = None
            self.closed: tuple[int, float] | None = None  # (code, loop time) of A's close
            self.ws = None

        async def run(self) -> None:
            while True:
                try:
                    frame = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
                except ConnectionClosed as closed:
                    assert self.closed is None, "closed twice"
                    self.closed = (closed.rcvd.code if closed.rcvd else None, loop.time())
                    self.ws = await open_subscription(b.port, self.cursor)  # elsewhere, from the cursor
                    continue
                if frame["type"] == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                    continue
                assert frame["type"] == "next", frame
                event = frame["payload"]["data"]["roomEvents"]
                if event["__typename"] != "MessageAdded":
                    continue
                self.received.append((event["seq"], event["message"]["text"]))
                self.cursor = event["cursor"]
                if event["message"]["text"] == "end":
                    await self.ws.close()
                    return

    subscribers = [Subscriber() for _ in range(SUBSCRIBERS)]
    for subscriber in subscribers:
        subscriber.ws = await open_subscription(a.port, None)
    await until_in_group(f"room.{room_pk}")
    readers = [asyncio.create_task(s.run()) for s in subscribers]

    sent: list[str] = []

    async def send(text: str) -> None:
        await asyncio.to_thread(post_graphql, b.port, SEND_MESSAGE, {"roomId": room_id, "text": text}, alice_token)
        sent.append(text)

    # Steady sending through B, before, during and after A's drain.
    for _i in range(10):
        await send(f"m{len(sent)}")
    terminated_at = loop.time()
    a.process.send_signal(signal.SIGTERM)
    exited = asyncio.create_task(exit_time(a.process, loop))
    readiness = await asyncio.to_thread(status, a.port, "/readyz")
    assert readiness == 503, readiness
    with pytest.raises(InvalidStatus) as refused:  # new sockets go elsewhere
        await open_subscription(a.port, None)
    assert refused.value.response.status_code == 403
    while a.process.poll() is None and loop.time() < terminated_at + DRAIN_SECONDS + EXIT_MARGIN + 2:
        await send(f"m{len(sent)}")
    assert a.process.poll() is not None, "A did not exit by itself"
    exited_after = await exited - terminated_at
    assert exited_after < DRAIN_SECONDS + EXIT_MARGIN, exited_after
    for _ in range(5):
        await send(f"m{len(sent)}")
    await send("end")
    await asyncio.wait_for(asyncio.gather(*readers), 30)

    # Every subscriber: closed by A with 1012, then every message exactly once, in order.
    for subscriber in subscribers:
        assert subscriber.closed is not None and subscriber.closed[0] == 1012, subscriber.closed
        assert [text for _, text in subscriber.received] == sent
        seqs = [seq for seq, _ in subscriber.received]
        assert seqs == list(range(seqs[0], seqs[0] + len(sent)))
    # The closes were spread over the drain period, not all at once.
    close_times = sorted(s.closed[1] - terminated_at for s in subscribers)
    assert close_times[-1] - close_times[0] > DRAIN_SECONDS * 0.3, close_times
    assert close_times[-1] < DRAIN_SECONDS, close_times
    assert a.process.returncode == 0, a.log.read_text()[-2000:]
    assert "exiting now" not in a.log.read_text()  # a graceful stop, not the watchdog's
    assert len(sent) > 30
    print(f"drain: closes at {[round(t, 2) for t in close_times]} s, exit after {exited_after:.2f} s, {len(sent)} sent")
