"""Fixed-window rate limits in Django's cache.

The cache is local memory in the embedded default and Redis in services mode,
so a limit holds across every server process sharing that Redis.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache

from chat import metrics
from chat.errors import RateLimited

logger = logging.getLogger(__name__)


def _window(key: str, window: int) -> tuple[str, int]:
    now = int(time.time())
    start = now - now % window
    return f"rl:{key}:{start}", start + window - now


def hit(key: str, limit: int, window: int) -> None:
    """Count one attempt under ``key``; raise ``RateLimited`` past ``limit`` per ``window`` seconds."""
    cache_key, retry_after = _window(key, window)
    try:
        count = _add(cache_key, window, 1)
    except Exception:  # noqa: BLE001 - see _unavailable
        return _unavailable(key)
    if count > limit:
        metrics.rate_limited(_action(key))
        raise RateLimited(retry_after=max(retry_after, 1))


def _add(cache_key: str, window: int, amount: int) -> int:
    """Add ``amount`` to a window's counter, made on the window's first hit; the new count.

    Incrementing first means one increment (Redis: ``EXISTS`` and ``INCRBY``, from
    Django's ``incr``) for every hit but the window's first, which also makes the
    key (``SET NX``, the only way to give it its expiry). Both keep the key's expiry."""
    try:
        return cache.incr(cache_key, amount)
    except ValueError:  # no counter yet in this window
        pass
    if cache.add(cache_key, amount, timeout=window + 1):
        return amount
    try:
        return cache.incr(cache_key, amount)  # another process made it meanwhile
    except ValueError:  # and it expired since
        cache.set(cache_key, amount, timeout=window + 1)
        return amount


def _action(key: str) -> str:
    # Keys are built by the code (``action:actor...``), so their first part is a bounded label.
    return key.split(":", 1)[0]


def throttle(action: str, actor) -> None:
    """Count one ``action`` by ``actor`` against ``settings.RATE_LIMITS[action]``.

    The one limit every write that others see goes through (a message, an edit,
    a join, a reaction...): each of them fans out to every member's socket, so
    a single account looping over it costs the whole room. Call it after the
    access checks and before the write, so a refusal changes nothing.
    """
    limit, window = settings.RATE_LIMITS[action]
    hit(f"{action}:{actor.pk}", limit, window)


def count(key: str, window: int, add: int = 0) -> int:
    """The number counted under ``key`` in the current window, after adding ``add``
    (a counter that never refuses, for callers that scale a response with it)."""
    cache_key, _ = _window(key, window)
    try:
        if not add:
            return cache.get(cache_key) or 0
        return _add(cache_key, window, add)
    except Exception:  # noqa: BLE001 - see _unavailable
        _unavailable(key)
        return 0


def check(key: str, limit: int, window: int) -> None:
    """Raise ``RateLimited`` if ``key`` is already over ``limit``, without counting."""
    cache_key, retry_after = _window(key, window)
    try:
        count = cache.get(cache_key) or 0
    except Exception:  # noqa: BLE001 - see _unavailable
        return _unavailable(key)
    if count >= limit:
        metrics.rate_limited(_action(key))
        raise RateLimited(retry_after=max(retry_after, 1))


def refund(key: str, window: int) -> None:
    """Give back one attempt counted by ``hit`` in the current window (an attempt
    that turned out not to count, such as a successful log-in). Counting first
    and refunding after, rather than checking first and counting after, keeps
    parallel attempts from all slipping past the limit before any is counted."""
    try:
        cache.decr(_window(key, window)[0])
    except ValueError:  # the window rolled over: nothing to give back
        pass
    except Exception:  # noqa: BLE001 - see _unavailable
        _unavailable(key)


def reset(key: str, window: int) -> None:
    try:
        cache.delete(_window(key, window)[0])
    except Exception:  # noqa: BLE001 - see _unavailable
        _unavailable(key)


def _unavailable(key: str) -> None:
    """The cache (Redis in services mode) does not answer: the limits fail open.
    Refusing every send, login and upload while Redis restarts would turn a
    cache outage into a full outage; the window is short and it is logged."""
    logger.warning("rate limit cache unavailable; allowing %s", key.split(":", 1)[0], exc_info=True)
