"""autobahn's WebSocket server protocol (the class daphne's ``WebSocketProtocol``
extends), reached from a consumer.

daphne hands a consumer its protocol object (schema/live/daphne_adapter.py); what
the consumer then does with it is autobahn's: the incoming frame limit, a close
frame with any code, the unmasking state kept between frames, a text frame
written without autobahn's general send path, and autobahn's per-frame debug
line. ``maxFramePayloadSize`` and ``failByDrop`` are autobahn's documented
protocol options; the rest (``_perMessageCompress``, ``send_queue``,
``trackedTimings``, ``trafficStats``, ``current_frame_masker``, ``sendCloseFrame``,
the modules' ``hltype``/``hlval``) is not its public API: guarded by
tests/schema/test_live_adapters.py.
"""

from __future__ import annotations

from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol


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


def close_after(protocol: Any, seconds: float) -> None:
    """How long, once this side sends its close frame, autobahn waits for the peer's
    before it aborts the TCP connection (its ``closeHandshakeTimeout`` option, for
    this connection alone; daphne leaves autobahn's default of 1 s)."""
    protocol.closeHandshakeTimeout = seconds


def send_close_frame(protocol: Any, code: int, reason: str) -> None:
    """A close frame with any code: autobahn's ``sendClose()`` refuses the 1xxx
    codes other than 1000 (1009 "message too big" included), so send it the way
    autobahn itself does."""
    protocol.sendCloseFrame(code=code, reasonUtf8=reason.encode()[:120], isReply=False)


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
