"""Django's Redis cache with one client, and so one connection pool, per process.

Django's cache handler is context-local: each request gets cache objects of its
own, and each ``RedisCache`` makes its own client with its own connection pools.
Every request therefore opened a Redis connection (a TCP connect and a
``SELECT``) for its first rate-limit check. Here the cache objects of the same
settings share one client (redis-py's pools are thread-safe; a connection
broken by a Redis restart is replaced on its next use, ``retry_on_error``).

``_cache`` is where Django's ``RedisCache`` keeps its client (a cached property
built from ``_class``, ``_servers`` and ``_options``), not public API: guarded by
tests/test_redis_cache.py.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property

_clients: dict[tuple, object] = {}
_lock = threading.Lock()


class SharedRedisCache(RedisCache):
    @cached_property
    def _cache(self):
        key = (self._class, tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
        return client
