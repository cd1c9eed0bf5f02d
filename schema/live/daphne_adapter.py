"""daphne's WebSocket protocol object (an autobahn ``WebSocketServerProtocol``),
reached from a consumer.

daphne gives each application ``functools.partial(server.handle_reply, protocol)``
as its ASGI ``send``; that protocol is the only place where the frame size limit,
the close frame and the outgoing buffer of a socket can be reached. None of it is
daphne's public API: guarded by tests/schema/test_live_adapters.py.
"""

from __future__ import annotations

from typing import Any


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


def send_close_frame(protocol: Any, code: int, reason: str) -> None:
    """A close frame with any code: autobahn's ``sendClose()`` refuses the 1xxx
    codes other than 1000 (1009 "message too big" included), so send it the way
    autobahn itself does."""
    protocol.sendCloseFrame(code=code, reasonUtf8=reason.encode()[:120], isReply=False)


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
