"""One Redis client per process for Django's cache (backend/redis_cache.py)."""

from __future__ import annotations

import inspect

import pytest
from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property

from backend.redis_cache import SharedRedisCache

PARAMS = {"OPTIONS": {"socket_connect_timeout": 2}}


def test_djangos_redis_cache_keeps_its_client_where_the_adapter_looks():
    # Building a cache object connects to nothing.
    cache = RedisCache("redis://127.0.0.1:1/0", PARAMS)
    assert isinstance(vars(RedisCache)["_cache"], cached_property)
    assert "self._class(self._servers, **self._options)" in inspect.getsource(RedisCache._cache.func)
    assert cache._servers == ["redis://127.0.0.1:1/0"] and cache._options == PARAMS["OPTIONS"]


def test_cache_objects_of_the_same_settings_share_one_client():
    # Django makes a cache object per request context; they must not each connect.
    first, second = (SharedRedisCache("redis://127.0.0.1:1/0", PARAMS) for _ in range(2))
    assert first._cache is second._cache
    other = SharedRedisCache("redis://127.0.0.1:1/1", PARAMS)
    assert other._cache is not first._cache


@pytest.mark.services
def test_requests_reuse_the_connection(settings):
    """Through the configured cache in services mode: a second cache object (another
    request's) finds the first one's connection in the pool instead of opening one."""
    from django.core.cache import caches

    first = caches.create_connection("default")
    first.set("shared-client-probe", 1)
    pool = first._cache._get_connection_pool(write=True)
    opened = pool._created_connections
    second = caches.create_connection("default")
    assert second.get("shared-client-probe") == 1
    assert second._cache._get_connection_pool(write=True) is pool
    assert pool._created_connections == opened
