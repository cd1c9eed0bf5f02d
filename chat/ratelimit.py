"""Fixed-window rate limits in Django's cache.

The cache is local memory in the embedded default and Redis in services mode,
so a limit holds across every server process sharing that Redis.
"""

from __future__ import annotations

import time

from django.core.cache import cache

from chat.errors import RateLimited


def _window(key: str, window: int) -> tuple[str, int]:
    now = int(time.time())
    start = now - now % window
    return f"rl:{key}:{start}", start + window - now


def hit(key: str, limit: int, window: int) -> None:
    """Count one attempt under ``key``; raise ``RateLimited`` past ``limit`` per ``window`` seconds."""
    cache_key, retry_after = _window(key, window)
    cache.add(cache_key, 0, timeout=window + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window + 1)
        count = 1
    if count > limit:
        raise RateLimited(retry_after=max(retry_after, 1))


def check(key: str, limit: int, window: int) -> None:
    """Raise ``RateLimited`` if ``key`` is already over ``limit``, without counting."""
    cache_key, retry_after = _window(key, window)
    if (cache.get(cache_key) or 0) >= limit:
        raise RateLimited(retry_after=max(retry_after, 1))


def reset(key: str, window: int) -> None:
    cache.delete(_window(key, window)[0])
