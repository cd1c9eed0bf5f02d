"""Probes and drain, embedded: /livez, /readyz (and its alias /healthz), and what
a drain does to the sockets of this process (tests/test_drain.py drains a live
daphne with SIGTERM)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from django.test import AsyncClient, Client

from chat import lifecycle
from schema.live import drain
from tests.clients import WSClient, async_token_for

READY = {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok", "shutdown": "ok"}}


@pytest.fixture(autouse=True)
def serving():
    lifecycle.reset()
    yield
    lifecycle.reset()


def test_livez_answers_without_the_database(monkeypatch):
    from chat import views

    def down():
        raise AssertionError("liveness must not touch the database")

    monkeypatch.setattr(views, "_check_database", down)
    response = Client().get("/livez")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("path", ["/readyz", "/healthz"])
def test_ready_when_database_and_layer_answer(db, path):
    response = Client().get(path)
    assert (response.status_code, response.json()) == (200, READY)


@pytest.mark.parametrize("path", ["/readyz", "/healthz"])
def test_not_ready_while_draining(db, path):
    lifecycle.start_draining()
    response = Client().get(path)
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "channel_layer": "ok", "shutdown": "draining"},
    }
    assert Client().get("/livez").status_code == 200  # alive: only leaving the rotation


def test_not_ready_when_the_channel_layer_fails(db, monkeypatch):
    from chat import views

    async def down():
        raise ConnectionError("redis gone")

    monkeypatch.setattr(views, "_check_channel_layer", down)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "error: ConnectionError", "shutdown": "ok"}


def test_schedule_spreads_batches_over_the_period():
    plan = lifecycle.schedule(100, 10.0)
    assert plan[0][1] == 0 and plan[-1][2] == 100
    assert all(a[2] == b[1] for a, b in itertools.pairwise(plan))  # every socket once, in order
    delays = [delay for delay, _, _ in plan]
    assert delays == sorted(delays)
    assert delays[-1] > 10.0 * lifecycle.CLOSING_SHARE * 0.8  # spread, not all at once
    assert delays[-1] <= 10.0 * lifecycle.CLOSING_SHARE
    assert len(plan) > 10
    assert lifecycle.schedule(0, 10.0) == []
    assert lifecycle.schedule(3, 0.0) == [(0.0, 0, 3)]  # no period: all at once


@pytest.mark.django_db(transaction=True)
async def test_drain_closes_open_sockets_with_1012_and_refuses_new_ones(alice):
    token = await async_token_for(alice)
    clients = [WSClient(token=token) for _ in range(4)]
    for client in clients:
        assert (await client.connect())["type"] == "connection_ack"
    assert lifecycle.open_connections() == 4

    in_flight = {"n": 1}
    loop = asyncio.get_running_loop()
    started = loop.time()
    draining = asyncio.create_task(lifecycle.drain(1.0, lambda: in_flight["n"]))
    await asyncio.sleep(0)
    assert lifecycle.draining()
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503

    refused = WSClient(token=token)
    connected, _ = await refused.communicator.connect()
    assert not connected  # the handshake is refused: the client goes elsewhere

    codes = await asyncio.gather(*(client.receive_close(timeout=3) for client in clients))
    assert codes == [1012] * 4
    assert lifecycle.open_connections() == 0
    await asyncio.sleep(0.1)
    assert not draining.done()  # a request still runs: the drain waits for it (until the period ends)
    in_flight["n"] = 0
    await asyncio.wait_for(draining, 2)
    assert loop.time() - started < 1.0


async def test_drain_gate_counts_http_requests_in_flight():
    seen = []

    async def app(scope, receive, send):
        seen.append(drain.http_in_flight())

    gate = drain.DrainGate(http=app, websocket=app)
    await gate({"type": "http"}, None, None)
    assert seen == [1] and drain.http_in_flight() == 0
