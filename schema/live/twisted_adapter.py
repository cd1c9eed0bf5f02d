"""Twisted's outgoing buffers: how much a socket's peer has not read, and writes
that go straight to the socket when nothing is queued.

Twisted's transports queue writes in userspace (``_tempDataBuffer`` and the
unsent tail of ``dataBuffer``) once the kernel's socket buffer is full; nothing
bounds that queue and no public API reports its size. Under TLS the wrapping
protocol keeps its own buffer (``_appSendBuffer``) in front of the TCP transport.
Each layer's own attributes are read (its ``__dict__``): a protocol wrapper forwards
unknown attributes to the transport it wraps, which would count the TCP buffer
twice. Guarded by tests/schema/test_live_adapters.py.
"""

from __future__ import annotations

from typing import Any


def unsent_bytes(protocol: Any) -> int:
    """Bytes written to the protocol's connection that the peer has not taken yet
    (both layers counted under TLS)."""
    total = 0
    transport = getattr(protocol, "transport", None)
    seen = 0
    while transport is not None and seen < 4:
        seen += 1
        own = getattr(transport, "__dict__", {})
        if "_tempDataLen" in own:  # a Twisted FileDescriptor (its dataBuffer is a class default until it flushes)
            total += len(transport.dataBuffer) - transport.offset + own["_tempDataLen"]
        app_buffer = own.get("_appSendBuffer")
        if app_buffer:
            total += sum(len(chunk) for chunk in app_buffer)
        transport = own.get("transport")
    return total


# --- The reactor: daphne runs on Twisted's asyncio reactor and installs its own
# SIGTERM handler (stop at once) when the reactor starts. Only Twisted's public API
# is used here; the reactor is looked up, never installed (outside daphne there is
# none and these do nothing).


def _running_reactor() -> Any | None:
    import sys

    return sys.modules.get("twisted.internet.reactor")


def when_running(callback) -> None:
    """Call ``callback`` once the reactor runs (after Twisted installed its signal handlers)."""
    reactor = _running_reactor()
    if reactor is not None:
        reactor.callWhenRunning(callback)


def on_signal(signum: int, callback) -> None:
    """Replace the reactor's handler of ``signum``: ``callback()`` runs in the reactor's loop.
    Only from the main thread (the autoreloading ``runserver`` runs its reactor in
    another thread, where signals cannot be handled: it keeps Twisted's behaviour)."""
    import signal
    import threading

    reactor = _running_reactor()
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signum, lambda number, frame: reactor.callFromThread(callback))


def stop_reactor() -> None:
    reactor = _running_reactor()
    if reactor is not None and reactor.running:
        reactor.stop()


# --- Writes straight to the socket -----------------------------------------------------------
#
# Twisted's TCP ``write`` never sends: it queues the bytes and asks the reactor to
# report the socket writable, and on daphne's asyncio reactor that is an
# ``epoll_ctl`` to watch the socket, a loop turn, a ``callWithLogger`` wrapped
# callback that sends, and another ``epoll_ctl`` to stop watching, per write. A
# fan-out writes one frame to each of N sockets: that bookkeeping was about a third
# of the CPU a delivery cost. asyncio's own transports try the send first and
# queue only what the kernel did not take; so does this, process-wide, for plain
# TCP connections whose queue is empty. Anything else (a queue already waiting,
# a closing connection, TLS, a pull producer that expects to be asked for more
# when the queue drains, an error from the socket) takes Twisted's own path
# unchanged, which also reports the errors the way Twisted does.

_queued_write = None  # Twisted's own TCP write, kept by write_through()


def _write(self, data) -> None:
    if (
        type(data) is bytes
        and not self.dataBuffer
        and not self._tempDataLen
        and self.connected
        and not self.disconnecting
        and not self._writeDisconnecting
        and not self._writeDisconnected
        and not self.TLS
        and (self.producer is None or self.streamingProducer)
    ):
        try:
            sent = self.socket.send(data)
        except OSError:  # full (EAGAIN), or broken: the queued write finds out
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    _queued_write(self, data)


def write_through() -> None:
    """Have Twisted's TCP connections send at once when nothing is queued (idempotent)."""
    global _queued_write
    from twisted.internet import tcp

    if tcp.Connection.write is _write:
        return
    _queued_write = tcp.Connection.write
    tcp.Connection.write = _write
