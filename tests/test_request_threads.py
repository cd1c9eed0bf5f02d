"""HTTP requests borrow their sync thread, and with it a database connection,
from a pool (backend/request_threads.py), through the real ASGI application."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django.db import connections
from django.db.backends.signals import connection_created

from backend import request_threads
from backend.asgi import application
from tests.clients import async_token_for

pytestmark = pytest.mark.django_db(transaction=True)

ME = "query { me { username } }"


async def post_graphql(query: str, token: str | None = None) -> tuple[int, dict]:
    """One POST /graphql/ through ``backend.asgi.application``, as daphne hands it over."""
    status, _, body = await exchange(query, token)
    return status, body


async def exchange(query: str, token: str | None = None) -> tuple[int, dict[bytes, bytes], dict]:
    """``post_graphql`` with the response's headers (lower-cased names)."""
    body = json.dumps({"query": query}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if token:
        headers.append((b"authorization", f"JWT {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql/",
        "raw_path": b"/graphql/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {name.lower(): value for name, value in start["headers"]}, json.loads(content)


@pytest.fixture
def new_connections():
    opened: list[int] = []

    def count(sender, connection, **kwargs):
        opened.append(threading.get_ident())

    connection_created.connect(count)
    yield opened
    connection_created.disconnect(count)


async def test_requests_in_a_row_share_one_database_connection(alice, new_connections):
    token = await async_token_for(alice)
    for _ in range(5):
        status, body = await post_graphql(ME, token)
        assert status == 200 and body == {"data": {"me": {"username": alice.username}}}
    # A thread per request used to open (and close) a connection per request.
    assert len(new_connections) <= 1


async def test_concurrent_requests_each_get_a_thread_and_the_idle_ones_are_bounded(alice, new_connections, settings):
    settings.REQUEST_THREADS_IDLE = 2
    request_threads.pool.close()
    token = await async_token_for(alice)
    results = await asyncio.gather(*(post_graphql(ME, token) for _ in range(6)))
    assert all(status == 200 and "errors" not in body for status, body in results)
    assert request_threads.pool.idle() <= 2
    request_threads.pool.close()
    assert request_threads.pool.idle() == 0


def test_a_request_keeps_one_thread_for_all_its_sync_code():
    request_threads.pool.close()
    thread = request_threads._RequestThread()
    first = thread.submit(threading.get_ident).result()
    second = thread.submit(threading.get_ident).result()
    assert first == second != threading.get_ident()
    thread.release()
    # The next request gets the same thread back.
    again = request_threads._RequestThread()
    assert again.submit(threading.get_ident).result() == first
    again.release()
    request_threads.pool.close()


def test_a_thread_past_the_idle_limit_closes_its_connections_and_ends(settings, db):
    settings.REQUEST_THREADS_IDLE = 1
    request_threads.pool.close()
    borrowed = [request_threads._RequestThread() for _ in range(3)]
    idents = []
    for thread in borrowed:
        idents.append(thread.submit(threading.get_ident).result())
        thread.submit(lambda: connections["default"].ensure_connection()).result()
    assert len(set(idents)) == 3
    for thread in borrowed:
        thread.release()
    assert request_threads.pool.idle() == 1
    alive = {t.ident for t in threading.enumerate()}
    for _ in range(100):
        if len(set(idents) & alive) <= 1:
            break
        threading.Event().wait(0.02)
        alive = {t.ident for t in threading.enumerate()}
    assert len(set(idents) & alive) == 1  # the kept one
    request_threads.pool.close()
    assert not set(idents) & {t.ident for t in threading.enumerate()}


def test_asgirefs_thread_for_sync_code_outside_requests_is_an_executor():
    """tests/conftest.py closes the connections of asgiref's thread for sync code run
    outside a request (the WebSocket side's) through ``SyncToAsync.single_thread_executor``
    before the test database is dropped: an upgrade that renames it fails here."""
    from concurrent.futures import Executor

    from asgiref.sync import SyncToAsync

    assert isinstance(SyncToAsync.single_thread_executor, Executor)


async def test_the_middleware_chain_runs_in_the_requests_thread_without_hand_offs(alice, monkeypatch):
    """Django's own middlewares run their hooks where the chain runs (the request's
    thread), not each through ``sync_to_async`` from the event loop and back; the
    response still carries what each of them adds."""
    from asgiref import sync

    handed_off: list[str] = []
    original = sync.SyncToAsync.__init__

    def recording(self, func, *args, **kwargs):
        handed_off.append(getattr(func, "__qualname__", repr(func)))
        original(self, func, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__init__", recording)
    token = await async_token_for(alice)
    handed_off.clear()
    status, body = await post_graphql(ME, token)
    assert status == 200 and body == {"data": {"me": {"username": alice.username}}}
    hooks = [name for name in handed_off if name.rpartition(".")[2] in {"process_request", "process_response"}]
    assert hooks == [], hooks


async def test_responses_still_carry_every_middlewares_headers(alice):
    """Security (nosniff, referrer policy), clickjacking, request id: each middleware
    of the chain still answered, through the one thread."""
    status, headers, _ = await exchange(ME, await async_token_for(alice))
    assert status == 200
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"referrer-policy"]
    assert headers[b"x-request-id"]
