"""daphne's side of a connection: the protocol object behind an ASGI ``send``,
a WebSocket's input queue, and Nagle's algorithm on HTTP connections.

daphne gives each application ``functools.partial(server.handle_reply, protocol)``
as its ASGI ``send``; that protocol (for a WebSocket, an autobahn server protocol,
whose parts the consumer reaches through schema/live/autobahn_adapter.py) is the
only place where the connection itself can be reached, and the WebSocket protocol
keeps the application's input queue as ``application_queue``. None of it is
daphne's public API: guarded by tests/schema/test_live_adapters.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from chat.realtime import LightQueue


def connection(send: Any) -> Any | None:
    """What an ASGI ``send`` callable replies through under daphne (its
    ``partial(server.handle_reply, protocol)``): the WebSocket protocol or the HTTP
    request, both with a ``transport``; None elsewhere."""
    args = getattr(send, "args", None)
    if getattr(send, "func", None) is None or not args:
        return None
    return args[0] if hasattr(args[0], "transport") else None


def daphne_protocol(send: Any) -> Any | None:
    """The autobahn protocol behind an ASGI ``send`` callable under daphne, else None."""
    protocol = connection(send)
    return protocol if hasattr(protocol, "sendMessage") else None


# --- A WebSocket's input queue -----------------------------------------------------------
#
# daphne makes an ``asyncio.Queue`` per connection and gives the application its
# ``get`` as ``receive``; the WebSocket protocol keeps the queue as its
# ``application_queue`` and only ever ``put_nowait``s into it (the connect, each
# frame, the disconnect). An empty asyncio.Queue holds four deques: about 3 KB
# per idle socket, as much as all of its subscription's own state. A
# ``LightReceive`` takes the queue's place on the protocol at the application's
# first ``receive`` (daphne sets ``application_queue`` only once the application
# is made), moving over, in order, what daphne queued before.


class LightReceive(LightQueue):
    """An ASGI ``receive`` for a WebSocket under daphne that replaces daphne's
    input queue with a ``LightQueue`` (``light_receive``)."""

    __slots__ = ("_protocol", "_source")

    def __init__(self, source, protocol):
        super().__init__()
        self._source = source  # daphne's queue, until this one takes its place
        self._protocol = protocol

    def __call__(self) -> Awaitable[dict]:
        # Not a coroutine function itself: one suspended frame per idle socket (get's) instead of two.
        if self._source is not None and not self._take_place():
            return self._source.get()
        return self.get()

    def _take_place(self) -> bool:
        current = getattr(self._protocol, "application_queue", None)
        if current is None:
            return False  # not set yet: read daphne's queue this time
        if current is not self._source:  # not daphne's usual wiring: leave it alone
            self._protocol = None
            return False
        while not current.empty():
            self.put_nowait(current.get_nowait())
        self._protocol.application_queue = self
        self._source = self._protocol = None
        return True


def light_receive(receive: Any, send: Any) -> Any:
    """``receive`` for a WebSocket application: a ``LightReceive`` when ``receive``
    and ``send`` are daphne's (its queue's ``get`` and ``partial(server.handle_reply,
    protocol)``), else ``receive`` itself."""
    queue = getattr(receive, "__self__", None)
    protocol = daphne_protocol(send)
    if protocol is None or type(queue) is not asyncio.Queue or receive != queue.get:
        return receive
    return LightReceive(queue, protocol)


# --- Nagle's algorithm on HTTP connections ---------------------------------------------------
#
# daphne writes an HTTP response's head and body as two writes. With Nagle's
# algorithm on (Twisted leaves TCP_NODELAY off; autobahn turns it on for WebSocket
# connections only), the body then waits for the client to acknowledge the head,
# which a client delays by up to 40 ms: a keep-alive client saw every mutation take
# about 50 ms instead of about 10.


def send_without_delay(send: Any) -> None:
    """Turn Nagle's algorithm off for the connection behind an HTTP request's ASGI
    ``send`` under daphne (``partial(server.handle_reply, request)``); elsewhere, nothing."""
    set_no_delay = getattr(getattr(connection(send), "transport", None), "setTcpNoDelay", None)
    if set_no_delay is not None:
        set_no_delay(True)
