"""Channels' private parts that the live path uses, in one place.

Guarded by tests/schema/test_live_adapters.py: an upgrade of Channels that
moves one of these fails there, loudly, instead of silently changing delivery.

Consumers: ``AsyncConsumer.__call__`` assigns ``base_send`` (the server's ASGI
send), which the consumer hands to daphne_adapter to find the socket's protocol
(``server_send``). The same ``__call__`` gives a consumer a channel of its own
(``channel_name``, ``channel_receive``) only when its ``channel_layer_alias``
names a configured layer: the consumer's names none, so no socket has one.

The embedded layer:
Channels' ``InMemoryChannelLayer`` sweeps every channel and every group
membership for expired entries on *each* ``receive`` and ``group_send``, and
``group_send`` starts one task and makes one deep copy per member. With N
subscribers of a room, one event then costs O(N²): at N = 1000 the sweep alone
was a quarter of the server's time in the fan-out benchmark. This subclass
keeps the behaviour and the settings (``capacity``, ``expiry``,
``group_expiry``) and changes the cost:

- the sweep runs at most once per ``cleanup_interval`` seconds (expired
  messages and memberships still go, up to that much later);
- ``group_send`` copies the message once and queues it for every member
  directly: the members of a group receive the same copy, which, like every
  channel-layer message in this project, is read-only;
- a full channel drops the message for that channel only, as before.
"""

from __future__ import annotations

import asyncio
import time
from copy import deepcopy

from channels.layers import InMemoryChannelLayer

# --- consumers ---------------------------------------------------------------------------


def server_send(consumer):
    """The ASGI ``send`` the server gave the consumer (Channels' ``base_send``)."""
    return consumer.base_send


# --- the embedded channel layer ----------------------------------------------------------


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
