"""Graceful shutdown under daphne: SIGTERM drains the process (chat/lifecycle.py),
then stops the server, and a watchdog makes sure the process really exits.

Why the watchdog: daphne stops Twisted's reactor (and with it the asyncio event
loop) on SIGTERM at once. A request whose sync code was running in a worker
thread at that moment can be waiting for the loop (``sendMessage`` publishes its
event after commit with ``async_to_sync``), and that wait never ends once the
loop has stopped; Python's exit then joins the worker threads forever, and the
process kept running until it was killed. Draining lets running requests finish
before the reactor stops; whatever still holds a thread past the drain period
(plus ``EXIT_MARGIN``) is cut by ``os._exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable

from asgiref.sync import markcoroutinefunction
from django.conf import settings

from chat import lifecycle
from schema.live import daphne_adapter, twisted_adapter

logger = logging.getLogger(__name__)

# Seconds past the drain period before the process exits whatever still runs.
EXIT_MARGIN = 2.0

_http_in_flight = 0
_tasks: set[asyncio.Task] = set()  # the drain's task, kept from the garbage collector


def http_in_flight() -> int:
    return _http_in_flight


class DrainGate:
    """The ASGI application's entry, by protocol (as Channels' ProtocolTypeRouter):
    it refuses new WebSocket handshakes while the process drains (the client sees
    HTTP 403 and connects elsewhere) and counts the HTTP requests running (the
    drain waits for them).

    It is not a coroutine function but returns one: for a WebSocket, the routed
    application's own. An ``async def`` router stays suspended in ``await`` for as
    long as its connection lives, a frame per idle socket (two with Channels'
    router under this gate).
    """

    def __init__(self, http, websocket):
        self.http = http
        self.websocket = websocket

    @markcoroutinefunction  # what ASGI servers check to tell ASGI 3 from ASGI 2
    def __call__(self, scope, receive, send) -> Awaitable[None]:
        kind = scope["type"]
        if kind == "websocket":
            if lifecycle.draining():
                return _refuse_handshake(receive, send)
            return self.websocket(scope, daphne_adapter.light_receive(receive, send), send)
        if kind == "http":
            return _counted(self.http, scope, receive, send)
        raise ValueError(f"No application for scope type {kind!r}")


async def _refuse_handshake(receive, send) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1012})


async def _counted(app, scope, receive, send) -> None:
    global _http_in_flight
    _http_in_flight += 1
    try:
        return await app(scope, receive, send)
    finally:
        _http_in_flight -= 1


def _hard_exit() -> None:
    # Written straight to stderr: a logging handler's lock may be held by a stuck thread.
    with contextlib.suppress(Exception):
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.write(2, f"still running {EXIT_MARGIN:.1f} s after the drain period: exiting now\n".encode())
    os._exit(0)


async def _drain_and_stop(period: float) -> None:
    try:
        await lifecycle.drain(period, http_in_flight)
    finally:
        twisted_adapter.stop_reactor()


def _on_sigterm() -> None:
    if lifecycle.draining():
        return
    period = settings.SHUTDOWN_DRAIN_SECONDS
    logger.warning("SIGTERM: draining for up to %.1f s", period)
    lifecycle.start_draining()
    watchdog = threading.Timer(period + EXIT_MARGIN, _hard_exit)
    watchdog.daemon = True
    watchdog.start()
    _tasks.add(asyncio.get_running_loop().create_task(_drain_and_stop(period)))


def install() -> None:
    """Under daphne: drain on SIGTERM instead of stopping at once (no-op elsewhere)."""
    twisted_adapter.when_running(lambda: twisted_adapter.on_signal(signal.SIGTERM, _on_sigterm))
