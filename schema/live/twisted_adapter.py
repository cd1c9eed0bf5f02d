"""Twisted's outgoing buffers, to see how much a socket's peer has not read.

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
        data_buffer = own.get("dataBuffer")
        if data_buffer is not None:
            total += len(data_buffer) - own.get("offset", 0) + own.get("_tempDataLen", 0)
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
