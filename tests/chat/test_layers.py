"""The embedded channel layer: Channels' in-memory semantics at linear cost."""

from __future__ import annotations

import asyncio
import os

import pytest
from channels.exceptions import ChannelFull

from schema.live.channels_adapter import LinearInMemoryChannelLayer
from schema.live.channels_redis_adapter import WaitingRedisChannelLayer


@pytest.fixture
def layer():
    return LinearInMemoryChannelLayer(capacity=3, expiry=60, cleanup_interval=0.05)


async def test_group_send_reaches_every_member_once(layer):
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room.1", a)
    await layer.group_add("room.1", b)
    await layer.group_send("room.1", {"type": "chat.event", "seq": 1})
    assert await layer.receive(a) == {"type": "chat.event", "seq": 1}
    assert await layer.receive(b) == {"type": "chat.event", "seq": 1}
    assert layer.channels == {}  # drained channels are forgotten, as in Channels' layer


async def test_members_receive_a_copy_not_the_senders_object(layer):
    a = await layer.new_channel()
    await layer.group_add("room.1", a)
    message = {"type": "chat.event", "payload": {"text": "hi"}}
    await layer.group_send("room.1", message)
    message["payload"]["text"] = "changed after sending"
    assert (await layer.receive(a))["payload"]["text"] == "hi"


async def test_a_full_channel_misses_group_messages_and_others_do_not(layer):
    full, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room.1", full)
    for seq in range(3):
        await layer.send(full, {"type": "x", "seq": seq})
    with pytest.raises(ChannelFull):
        await layer.send(full, {"type": "x", "seq": 3})
    await layer.group_add("room.1", other)
    await layer.group_send("room.1", {"type": "x", "seq": 4})
    assert [(await layer.receive(full))["seq"] for _ in range(3)] == [0, 1, 2]
    assert (await layer.receive(other))["seq"] == 4


async def test_expired_messages_and_their_channel_memberships_are_swept_after_the_interval():
    layer = LinearInMemoryChannelLayer(expiry=0.01, cleanup_interval=0.05)
    stale, live = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room.1", stale)
    await layer.group_add("room.1", live)
    await layer.send(stale, {"type": "x"})
    await asyncio.sleep(0.02)
    layer._clean_expired()  # first sweep: the message has expired
    assert stale not in layer.channels
    assert stale not in layer.groups["room.1"]
    await layer.send(live, {"type": "x"})
    await asyncio.sleep(0.02)
    layer._clean_expired()  # within the interval: nothing is swept
    assert live in layer.channels
    await asyncio.sleep(0.05)
    layer._clean_expired()
    assert live not in layer.channels
    assert live not in layer.groups.get("room.1", {})


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="services mode only: set REDIS_URL")
async def test_a_burst_of_group_changes_waits_for_the_pool_instead_of_failing():
    """redis-py 8's pool raises past 100 connections; the project's layer waits for one."""
    layer = WaitingRedisChannelLayer(
        hosts=[{"address": os.environ["REDIS_URL"]}], prefix="test-pool", pool_size=4, pool_timeout=10
    )
    channels = [await layer.new_channel() for _ in range(300)]
    try:
        await asyncio.gather(*(layer.group_add("burst", channel) for channel in channels))
        await layer.group_send("burst", {"type": "x", "n": 1})
        received = await asyncio.gather(*(layer.receive(channel) for channel in channels[:5]))
        assert [message["n"] for message in received] == [1] * 5
        await asyncio.gather(*(layer.group_discard("burst", channel) for channel in channels))
    finally:
        await layer.flush()
        await layer.close_pools()
