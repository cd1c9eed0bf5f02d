"""The rate limits' counters (chat/ratelimit.py), in the cache of the mode the suite
runs in: local memory embedded, Redis in services mode."""

from __future__ import annotations

import time
import uuid

import pytest
from django.core.cache import cache

from chat import ratelimit
from chat.errors import RateLimited


@pytest.fixture
def key():
    return f"test:{uuid.uuid4().hex}"


def test_hits_count_up_to_the_limit_then_refuse(key):
    for _ in range(3):
        ratelimit.hit(key, limit=3, window=60)
    with pytest.raises(RateLimited):
        ratelimit.hit(key, limit=3, window=60)
    assert ratelimit.count(key, 60) == 4


def test_a_counter_keeps_the_expiry_of_its_window_as_it_counts(key):
    cache_key = f"rl:{key}"
    assert [ratelimit._add(cache_key, 1, 1) for _ in range(3)] == [1, 2, 3]  # made, then incremented
    assert cache.get(cache_key) == 3
    time.sleep(2.3)  # past the window and its second of grace
    assert cache.get(cache_key) is None
    assert ratelimit._add(cache_key, 1, 2) == 2  # a new window starts at the amount


class _Cache:
    """A cache whose counter another process makes (and lets expire) at given moments."""

    def __init__(self, incr_results):
        self.incr_results = list(incr_results)
        self.calls = []

    def incr(self, key, delta):
        self.calls.append("incr")
        result = self.incr_results.pop(0)
        if result is None:
            raise ValueError(key)
        return result

    def add(self, key, value, timeout):
        self.calls.append("add")
        return False  # someone else's add won

    def set(self, key, value, timeout):
        self.calls.append("set")


def test_a_counter_made_by_another_process_meanwhile_is_incremented(monkeypatch):
    fake = _Cache([None, 7])
    monkeypatch.setattr(ratelimit, "cache", fake)
    assert ratelimit._add("rl:k", 60, 1) == 7
    assert fake.calls == ["incr", "add", "incr"]


def test_a_counter_that_expired_in_between_starts_again(monkeypatch):
    fake = _Cache([None, None])
    monkeypatch.setattr(ratelimit, "cache", fake)
    assert ratelimit._add("rl:k", 60, 2) == 2
    assert fake.calls == ["incr", "add", "incr", "set"]
