"""daphne's WebSocket protocol object (an autobahn ``WebSocketServerProtocol``),
reached from a consumer.

daphne gives each application ``functools.partial(server.handle_reply, protocol)``
as its ASGI ``send``; that protocol is the only place where the frame size limit,
the close frame and the outgoing buffer of a socket can be reached. None of it is
daphne's public API: guarded by tests/schema/test_live_adapters.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol

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


def limit_incoming_frames(protocol: Any, max_bytes: int) -> None:
    """autobahn refuses a bigger frame from its header, before reading the payload;
    without ``failByDrop`` it says why (close 1009) instead of dropping the TCP
    connection."""
    protocol.maxFramePayloadSize = max_bytes
    protocol.failByDrop = False


def forget_frame_mask(protocol: Any) -> None:
    """autobahn keeps the unmasking state of the last frame it read
    (``current_frame_masker``: a native buffer and its wrapper) until the next
    frame's header replaces it, so an idle socket holds its last frame's for good.
    Between frames (no ``current_frame``) autobahn does not read it."""
    if protocol is not None and protocol.current_frame is None:
        protocol.current_frame_masker = None


def send_close_frame(protocol: Any, code: int, reason: str) -> None:
    """A close frame with any code: autobahn's ``sendClose()`` refuses the 1xxx
    codes other than 1000 (1009 "message too big" included), so send it the way
    autobahn itself does."""
    protocol.sendCloseFrame(code=code, reasonUtf8=reason.encode()[:120], isReply=False)


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


# --- A text frame written straight to the connection -----------------------------------------
#
# A frame sent through the ASGI ``send`` passes Channels' consumer, daphne's reply
# routing (``handle_reply`` twice, ``serverSend``) and autobahn's general
# ``sendMessage`` / ``sendFrame`` / ``sendData`` (compression, fragmentation,
# masking, chopping, queueing, statistics) before the transport's ``write``: in a
# fan-out that layering cost as much as the write itself, per subscriber. For an
# open server socket without compression, fragmentation, a payload limit or
# queued frames, autobahn writes exactly one unmasked frame with the transport's
# ``write``; this writes that frame, and keeps autobahn's counters. Any other
# state returns False and the caller sends through ASGI as before.

_STATE_OPEN = WebSocketProtocol.STATE_OPEN


def send_text(protocol: Any, payload: bytes) -> bool:
    """Write ``payload`` as one text frame on ``protocol`` (an open autobahn server
    protocol) as autobahn's ``sendMessage`` would; False (nothing written) when
    only autobahn's own path may send it."""
    length = len(payload)
    if (
        protocol.state != _STATE_OPEN
        or protocol._perMessageCompress is not None
        or protocol.autoFragmentSize
        or protocol.send_queue
        or protocol.maskServerFrames
        or protocol.trackedTimings
        or 0 < protocol.maxMessagePayloadSize < length
    ):
        return False
    if length <= 125:
        header = bytes((0x81, length))
    elif length <= 0xFFFF:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    frame = header + payload
    protocol.transport.write(frame)
    stats = protocol.trafficStats
    stats.outgoingWebSocketMessages += 1
    stats.outgoingWebSocketFrames += 1
    stats.outgoingOctetsAppLevel += length
    stats.outgoingOctetsWebSocketLevel += length
    stats.outgoingOctetsWireLevel += len(frame)
    return True


# --- autobahn's per-frame debug line ---------------------------------------------------------
#
# autobahn writes a debug log line for every frame it sends, and builds that line's
# arguments before the logger decides to drop it: ``hltype(self.sendData)`` (the
# method's qualified name, taken apart with ``inspect`` and reassembled) and two
# ``hlval`` calls, each colouring its text with click when click is installed.
# That is tens of microseconds per frame, per subscriber, for a line nobody sees
# unless autobahn's debug logging is on. The protocol modules get plain versions
# instead: the same values, uncoloured, left for the logger to format if it ever
# emits the line.

_PROTOCOL_MODULES = ("autobahn.websocket.protocol", "autobahn.twisted.websocket")


def _plain_type(obj: Any) -> Any:
    return obj


def _plain_value(value: Any, color: str = "white", bold: bool = True) -> Any:
    return value


def plain_frame_debug_arguments() -> None:
    """Have autobahn's protocol modules skip the highlighting of their debug lines."""
    import importlib

    for name in _PROTOCOL_MODULES:
        module = importlib.import_module(name)
        module.hltype = _plain_type
        module.hlval = _plain_value


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
