"""The channel layers: Channels' in-memory layer made linear in fan-out (embedded
mode) and channels-redis' layer with a pool that waits (services mode).

Embedded:
Channels' ``InMemoryChannelLayer`` sweeps every channel and every group
membership for expired entries on *each* ``receive`` and ``group_send``, and
``group_send`` starts one task and makes one deep copy per member. With N
subscribers of a room, one event then costs O(N²): at N = 1000 the sweep alone
was a quarter of the server's time in the fan-out benchmark (issue 8, profile
in the README's "Benchmarks"). This subclass keeps the behaviour and the
settings (``capacity``, ``expiry``, ``group_expiry``) and changes the cost:

- the sweep runs at most once per ``cleanup_interval`` seconds (expired
  messages and memberships still go, up to that much later);
- ``group_send`` copies the message once and queues it for every member
  directly: the members of a group receive the same copy, which, like every
  channel-layer message in this project, is read-only;
- a full channel drops the message for that channel only, as before.

Services: ``RedisChannelLayer`` with redis-py's *blocking* connection pool.
redis-py 8's asyncio pool holds at most 100 connections and raises
``MaxConnectionsError`` past that; channels-redis takes a pooled connection for
every ``group_add``/``group_discard``/``send``, so a thousand sockets closing or
connecting at once (a restart, a network blip, the benchmark's idle-memory
scenario) made hundreds of them fail. Here a busy pool makes the caller wait
(``pool_timeout`` seconds at most) for one of ``pool_size`` connections.
"""

from __future__ import annotations

import asyncio
import time
from copy import deepcopy

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class LinearInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, cleanup_interval: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.cleanup_interval = cleanup_interval
        self._next_cleanup = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + self.cleanup_interval
        super()._clean_expired()

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    async def group_send(self, group, message):
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if not members:
            return
        item = (time.time() + self.expiry, deepcopy(message))
        for channel in list(members):
            try:
                self._queue(channel).put_nowait(item)
            except asyncio.QueueFull:
                pass  # like Channels' own layer: a full channel misses this message


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
