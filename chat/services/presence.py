"""Typing and presence: ephemeral, published to the channel layer, never stored.

Presence: a user is online while at least one of their WebSockets is open.
Each open socket is an entry with an expiry time; a heartbeat of the socket
(one batch per process for all its sockets) pushes its expiry forward, closing removes it, and an entry of a crashed
process simply expires (``PRESENCE_TTL``), so nobody stays online forever.
The entries live in Redis (one sorted set per user, shared by every server
process) in services mode and in process memory in the embedded default (one
process). Presence changes go to the groups of the rooms the user belongs to,
as ``PresenceChanged`` (subscribers deliver each change once).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from functools import cache

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from chat import access, events, ratelimit
from chat.models import Room, User

logger = logging.getLogger(__name__)

TYPING_CHANGED = "TypingChanged"
PRESENCE_CHANGED = "PresenceChanged"


def presence_ttl() -> float:
    return float(settings.PRESENCE_TTL)


def heartbeat_interval() -> float:
    return float(settings.PRESENCE_HEARTBEAT)


class MemoryPresence:
    """One process: {user id: {connection: expires at}}."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[int, dict[str, float]] = {}

    def _live(self, user_id: int, now: float) -> dict[str, float]:
        entries = self._entries.setdefault(user_id, {})
        for conn in [c for c, expires in entries.items() if expires <= now]:
            del entries[conn]
        return entries

    def add(self, user_id: int, conn: str, ttl: float) -> int:
        now = time.time()
        with self._lock:
            entries = self._live(user_id, now)
            entries[conn] = now + ttl
            return len(entries)

    def add_many(self, entries: Iterable[tuple[int, str]], ttl: float) -> None:
        now = time.time()
        with self._lock:
            for user_id, conn in entries:
                self._live(user_id, now)[conn] = now + ttl

    def remove(self, user_id: int, conn: str) -> tuple[bool, int]:
        with self._lock:
            entries = self._live(user_id, time.time())
            removed = entries.pop(conn, None) is not None
            return removed, len(entries)

    def count(self, user_id: int) -> int:
        with self._lock:
            return len(self._live(user_id, time.time()))

    def online(self, user_ids: Iterable[int]) -> list[int]:
        now = time.time()
        with self._lock:
            return [uid for uid in user_ids if self._live(uid, now)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class RedisPresence:
    """Every process on one Redis: a sorted set per user, scored by expiry time."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def _key(self, user_id: int) -> str:
        return f"{self.prefix}:presence:{user_id}"

    def add(self, user_id: int, conn: str, ttl: float) -> int:
        now, key = time.time(), self._key(user_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {conn: now + ttl})
        pipe.zcard(key)
        pipe.expire(key, int(ttl) + 1)
        return int(pipe.execute()[2])

    def add_many(self, entries: Iterable[tuple[int, str]], ttl: float) -> None:
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for user_id, conn in entries:
            key = self._key(user_id)
            pipe.zadd(key, {conn: now + ttl})
            pipe.expire(key, int(ttl) + 1)
        pipe.execute()

    def remove(self, user_id: int, conn: str) -> tuple[bool, int]:
        key = self._key(user_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(key, conn)
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.zcard(key)
        removed, _, count = pipe.execute()
        return bool(removed), int(count)

    def count(self, user_id: int) -> int:
        return int(self.client.zcount(self._key(user_id), f"({time.time()}", "+inf"))

    def online(self, user_ids: Iterable[int]) -> list[int]:
        user_ids = list(user_ids)
        now = f"({time.time()}"
        pipe = self.client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zcount(self._key(user_id), now, "+inf")
        return [uid for uid, count in zip(user_ids, pipe.execute(), strict=True) if count]

    def clear(self) -> None:
        for key in self.client.scan_iter(f"{self.prefix}:presence:*"):
            self.client.delete(key)


@cache
def store() -> MemoryPresence | RedisPresence:
    if settings.REDIS_URL:
        prefix = settings.CACHES["default"].get("KEY_PREFIX") or "chat"
        return RedisPresence(settings.REDIS_URL, prefix)
    return MemoryPresence()


def is_online(user_id: int) -> bool:
    return store().count(int(user_id)) > 0


def online_user_ids(user_ids: Iterable[int]) -> list[int]:
    """Those of ``user_ids`` with at least one open socket (one round trip to Redis)."""
    return store().online(int(uid) for uid in user_ids)


def _publish_presence(user: User, online: bool) -> None:
    now = timezone.now().isoformat()
    payload = {
        "user": events.user_snapshot(user),
        "online": online,
        "last_seen_at": user.last_seen_at.isoformat() if user.last_seen_at else None,
        "at": now,
    }
    for room_id in access.presence_rooms(user).values_list("pk", flat=True):
        message = {"type": events.EPHEMERAL_TYPE, "kind": PRESENCE_CHANGED, "room": room_id, "payload": payload}
        events.publish([events.room_group(room_id)], {**message, "created_at": now})


def _touch(user: User) -> None:
    user.last_seen_at = timezone.now()
    User.objects.filter(pk=user.pk).update(last_seen_at=user.last_seen_at)


def connect_socket(user: User, connection: str) -> bool:
    """Count an open socket of ``user``; True (and published) if they came online."""
    access.require_user(user)
    count = store().add(user.pk, connection, presence_ttl())
    _touch(user)
    if count == 1:
        _publish_presence(user, True)
        return True
    return False


def heartbeat_sockets(sockets: Iterable[tuple[User, str]], batch_size: int = 500) -> None:
    """Keep open sockets counted and their users' ``last_seen_at`` fresh: one
    batch for all the open sockets of a process (``Heartbeats``)."""
    sockets = list(sockets)
    store().add_many(((user.pk, connection) for user, connection in sockets), presence_ttl())
    now = timezone.now()
    user_ids = sorted({user.pk for user, _ in sockets})
    for start in range(0, len(user_ids), batch_size):
        User.objects.filter(pk__in=user_ids[start : start + batch_size]).update(last_seen_at=now)
    for user, _ in sockets:
        user.last_seen_at = now


class Heartbeats:
    """Every ``PRESENCE_HEARTBEAT`` seconds, one ``heartbeat_sockets`` for every
    open socket of this process, instead of a timer task and a write per socket
    (which cost memory per socket, issue 8, and a database write per socket
    per interval)."""

    def __init__(self):
        self.sockets: dict[str, User] = {}
        self.task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def register(self, connection: str, user: User) -> None:
        self.sockets[connection] = user
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop = loop
            self.task = loop.create_task(self.run())

    def unregister(self, connection: str) -> None:
        self.sockets.pop(connection, None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.sockets and self.loop is loop:
            await asyncio.sleep(heartbeat_interval())
            sockets = [(user, connection) for connection, user in self.sockets.items()]
            if not sockets:
                continue
            try:
                await database_sync_to_async(heartbeat_sockets)(sockets)
                # A socket closed during the batch may have been counted again: forget it.
                gone = [(user.pk, connection) for user, connection in sockets if connection not in self.sockets]
                if gone:
                    await database_sync_to_async(_forget)(gone)
            except Exception:  # Redis or the database down: the next interval tries again
                logger.warning("presence heartbeat failed", exc_info=True)


def _forget(entries: list[tuple[int, str]]) -> None:
    for user_id, connection in entries:
        store().remove(user_id, connection)


heartbeats = Heartbeats()


def disconnect_socket(user: User, connection: str) -> bool:
    """Forget a closed socket; True (and published) if it was the user's last one."""
    removed, count = store().remove(user.pk, connection)
    _touch(user)
    if removed and count == 0:
        _publish_presence(user, False)
        return True
    return False


def set_typing(actor: User, room_id, typing: bool) -> Room:
    """Tell the room's other members that ``actor`` is (not) typing.

    Members only (``NotFound`` otherwise, like a room that does not exist);
    throttled per user and room by ``RATE_LIMITS["set_typing"]``.
    """
    actor = access.require_user(actor)
    room = access.access_room(actor, room_id, member=True)
    access.require_may_write(actor, room)
    limit, window = settings.RATE_LIMITS["set_typing"]
    ratelimit.hit(f"set_typing:{actor.pk}:{room.pk}", limit, window)
    now = timezone.now().isoformat()
    events.publish(
        [events.room_group(room.pk)],
        {
            "type": events.EPHEMERAL_TYPE,
            "kind": TYPING_CHANGED,
            "room": room.pk,
            "payload": {"user": events.user_snapshot(actor), "typing": bool(typing)},
            "created_at": now,
        },
    )
    return room
