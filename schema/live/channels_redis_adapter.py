"""channels-redis' layer with a pool that waits (services mode).

redis-py 8's asyncio pool holds at most 100 connections and raises
``MaxConnectionsError`` past that; channels-redis takes a pooled connection for
every ``group_add``/``group_discard``/``send``, so a thousand sockets closing or
connecting at once (a restart, a network blip, the benchmark's idle-memory
scenario) made hundreds of them fail. Here a busy pool makes the caller wait
(``pool_timeout`` seconds at most) for one of ``pool_size`` connections.

channels-redis offers no hook for its pool: ``create_pool`` and ``hosts`` are
its internals, guarded by tests/schema/test_live_adapters.py.
"""

from __future__ import annotations

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class WaitingRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, pool_size: int = 200, pool_timeout: float = 10, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout

    def create_pool(self, index):
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        if address is None:  # a sentinel or keyword configuration: channels-redis' own pool
            return super().create_pool(index)
        return BlockingConnectionPool.from_url(
            address, max_connections=self.pool_size, timeout=self.pool_timeout, **host
        )
