"""The process's life cycle: serving, then draining before it stops.

A process asked to stop (SIGTERM, wired in schema/live/drain.py) drains first:
readiness fails at once (the load balancer stops sending new clients), new
real-time connections are refused, and the open ones are closed in batches with
jitter spread over the drain period, so that their clients reconnect to other
processes gradually (not all at the same instant) and resume from their cursor.

Transport-agnostic: a transport registers each open connection with the
coroutine that closes it for a restart (WebSocket: close code 1012).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]

# Closing spreads over this share of the drain period; the rest is left for the
# clients' close handshakes and the requests still running.
CLOSING_SHARE = 0.7
# Batches are at least this far apart (seconds): a batch per socket would be a
# timer per socket for nothing.
BATCH_SPACING = 0.1

_draining = False
_connections: dict[object, Closer] = {}


def draining() -> bool:
    """Whether this process is shutting down (readiness fails, new connections are refused)."""
    return _draining


def start_draining() -> None:
    global _draining
    _draining = True


def reset() -> None:
    """Serving again (tests)."""
    global _draining
    _draining = False


def register(connection: object, close_for_restart: Closer) -> None:
    """Count ``connection`` as open; ``close_for_restart`` closes it when the process drains."""
    _connections[connection] = close_for_restart


def unregister(connection: object) -> bool:
    """Forget ``connection``; whether it was registered (counted as open)."""
    return _connections.pop(connection, None) is not None


def open_connections() -> int:
    return len(_connections)


def schedule(count: int, period: float) -> list[tuple[float, int, int]]:
    """When to close ``count`` connections over ``period`` seconds: a list of
    (delay from now, first index, end index) batches, evenly spaced over the
    closing share of the period, each delayed by a random jitter within its slot."""
    if count <= 0:
        return []
    window = max(period, 0) * CLOSING_SHARE
    batches = max(1, min(count, math.floor(window / BATCH_SPACING) or 1))
    size = math.ceil(count / batches)
    slot = window / math.ceil(count / size)
    plan = []
    for index, first in enumerate(range(0, count, size)):
        plan.append((slot * index + random.uniform(0, slot * 0.5), first, min(first + size, count)))
    return plan


async def drain(period: float, in_flight: Callable[[], int] = lambda: 0) -> None:
    """Close every open connection over ``period`` seconds (batches with jitter),
    then wait, until the period ends at most, for the connections to finish closing
    and for ``in_flight()`` (requests still running) to reach zero."""
    start_draining()
    loop = asyncio.get_running_loop()
    started = loop.time()
    connections = list(_connections.items())
    random.shuffle(connections)
    plan = schedule(len(connections), period)
    logger.warning("draining: closing %d connections over %.1f s", len(connections), period * CLOSING_SHARE)
    for delay, first, end in plan:
        await asyncio.sleep(max(0.0, started + delay - loop.time()))
        for connection, close in connections[first:end]:
            if connection not in _connections:
                continue  # closed meanwhile
            try:
                await close()
            except Exception:  # one connection's failure is not the others'
                logger.warning("closing a connection for the restart failed", exc_info=True)
    while (_connections or in_flight()) and loop.time() < started + period:
        await asyncio.sleep(0.05)
    logger.warning("drained: %d connections and %d requests left", len(_connections), in_flight())
