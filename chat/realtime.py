"""The subscription engine: room events for one subscriber, exactly once and in order.

Transport-agnostic (no GraphQL here): the process receives the channel layer's
messages once (``Hub``), hands each to the subscriptions of its room, and a
subscription writes its live events through a ``Sink`` (the port a transport
implements, schema/live/fast_path.py for WebSocket operations) or yields
``Delivery`` objects that the API layer renders.

How it keeps its promise on an at-most-once channel layer:

- Each room's events carry a contiguous ``seq`` (assigned under the room lock,
  see chat/events.py). A subscription holds a *position* per room: the seq of
  the last event it delivered. A live event with ``seq <= position`` is a
  duplicate and dropped; ``seq > position + 1`` reveals a gap, filled from the
  Event table before anything else of that room is delivered, after a short
  wait for the missing event to arrive (parallel senders publish out of order).
- A dropped *last* event reveals no gap; a periodic check (``Checker``: two
  queries per process every ``REALTIME_CHECK_INTERVAL`` seconds, whatever the
  number of subscriptions) compares positions with ``Room.last_seq`` and the
  tracked rooms with the users' memberships, and wakes the subscriptions still
  behind at the next check (within two intervals).
- Start and resume: the groups are joined *before* positions are read, so an
  event committed in between is either in the replay or arrives live (and is
  then a duplicate by seq): no gap, no duplicate.
- The cursor of a delivery encodes the whole position vector, so ``after``
  resumes every room of an all-rooms subscription exactly.
- Authorization stays exact per subscriber: a room is tracked only while the
  user is a member (checked in the database when tracking starts); the user's
  own ``MemberLeft`` or the ``RoomDeleted`` is delivered last and the room is
  dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from chat import access, metrics
from chat.cursors import cursor_with, decode_cursor, encode_cursor
from chat.errors import NotFound
from chat.events import EPHEMERAL_TYPE, EVENT_TYPE, NOTIFICATION_TYPE, event_message, room_group, user_group
from chat.models import Event, Membership, Room, User
from chat.tokens import AUTH_REVOKED_TYPE, REVOCATION_GROUP

logger = logging.getLogger(__name__)

FILL_BATCH = 500

MEMBER_JOINED = Event.Kind.MEMBER_JOINED.value
MEMBER_LEFT = Event.Kind.MEMBER_LEFT.value
ROOM_DELETED = Event.Kind.ROOM_DELETED.value
TYPING_CHANGED = "TypingChanged"
CHECK_TYPE = "realtime.check"  # put in a subscription's queue by the checker, never sent on a layer
HEARTBEAT_TYPE = "realtime.heartbeat"  # a process's message to itself: is the layer still delivering?
PRESENCE_CHANGED = "PresenceChanged"


# --- The port: what a transport gives the engine ------------------------------------------


class Sink(Protocol):
    """Where one subscription's live deliveries go: the transport's side of a
    subscription (a WebSocket operation today; an SSE or multipart HTTP response
    can be one too).

    ``deliver`` writes the rendered delivery for the sink's operation and returns
    True, or returns False (writing nothing) when it cannot: the subscription's
    own path (its generator, in the transport's normal pipeline) then delivers it.
    The sink must never reorder: a True means the frame is written (or queued in
    order) before ``deliver`` returns. ``close`` ends the whole connection with a
    transport code (4403 revoked, 4429 too slow, 1013 service failure)."""

    async def deliver(self, delivery: Delivery) -> bool: ...

    async def close(self, code: int, reason: str) -> None: ...


class DrivingSink(Sink, Protocol):
    """A sink that can own its subscription once the start (and any replay) is
    delivered: the engine then runs the subscription itself, with no task, queue
    or generator of the transport's pipeline left waiting per subscription (the
    transport's operation ends; see ``Idle``).

    ``send`` writes any delivery (rendering it for this subscriber when ``deliver``
    would decline it); ``complete`` ends the operation normally (a one-room
    subscription after its last event); ``fail`` ends it with an error. The
    transport calls ``Idle.stop`` when the client ends the operation or goes away."""

    drives: bool

    async def send(self, delivery: Delivery) -> None: ...

    async def complete(self) -> None: ...

    async def fail(self, error: Exception) -> None: ...


class Idle:
    """Yielded by a subscription whose sink drives (``DrivingSink.drives``) once it
    has nothing to deliver and would wait: whoever iterates may hand the
    generator over with ``hand_over`` (the engine then resumes it only when a
    message arrives, in a short-lived task) or, if it cannot, ``decline`` and go on
    iterating as before."""

    __slots__ = ("stream",)

    def __init__(self, stream: RoomStream):
        self.stream = stream

    def hand_over(self, generator: AsyncIterator[Delivery]) -> None:
        self.stream._hand_over(generator)

    def decline(self) -> None:
        self.stream._driving = False

    async def stop(self) -> None:
        await self.stream._stop_driving()


# --- What a subscriber receives ----------------------------------------------------------


class Delivery(NamedTuple):
    """One event for one subscriber. ``message`` is the channel-layer message
    (``event_message`` shape, shared between subscribers: never mutate it);
    ``seq`` is None for ephemeral events (typing, presence). A named tuple: one is
    made per subscriber of a fan-out, and a frozen dataclass is slower to make."""

    message: dict
    cursor: str

    @property
    def room_id(self) -> int:
        return self.message["room"]

    @property
    def kind(self) -> str:
        return self.message["kind"]

    @property
    def seq(self) -> int | None:
        return self.message.get("seq")


def _user_id(value) -> int | None:
    """A user reference in a payload: a snapshot dict or a bare id."""
    if isinstance(value, dict):
        value = value.get("id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def ends_membership(message: dict, user_id: int) -> bool:
    """Whether, after this event, ``user_id`` no longer sees the room."""
    if message["kind"] == ROOM_DELETED:
        return True
    return message["kind"] == MEMBER_LEFT and _user_id(message["payload"].get("user")) == user_id


# --- Database reads (sync, run in a worker thread) --------------------------------------


def _joined_rooms(user_id: int, room_id: int | None) -> dict[int, tuple[int, int]]:
    """{room: (joined_seq, last_seq)} of the live rooms the user belongs to (one query)."""
    qs = Membership.objects.filter(user_id=user_id, room__deleted_at__isnull=True)
    if room_id is not None:
        qs = qs.filter(room_id=room_id)
    return {room: (joined, last) for room, joined, last in qs.values_list("room_id", "joined_seq", "room__last_seq")}


def _authorize_room(user: User, room_id: int) -> None:
    access.access_room(user, room_id, member=True)


def _last_seqs(room_ids: Iterable[int]) -> dict[int, int]:
    return dict(Room.objects.filter(pk__in=list(room_ids)).values_list("pk", "last_seq"))


def _events_after(positions: Mapping[int, int], limit: int) -> list[dict]:
    """Stored events with seq above each room's position, oldest first (by id,
    which follows seq within a room because writers hold the room lock)."""
    condition = Q()
    for room, seq in positions.items():
        condition |= Q(room_id=room, seq__gt=seq)
    if not positions:
        return []
    return [event_message(e) for e in Event.objects.filter(condition).order_by("id")[:limit]]


# --- The subscription ----------------------------------------------------------------------


def reorder_wait() -> float:
    """Seconds an event that arrived before its predecessor waits for it (then the gap is filled from the table)."""
    return settings.REALTIME_REORDER_WAIT


class LightQueue:
    """An unbounded queue for one reader, as light as possible while empty (a
    socket waits on a few of these for hours): an ``asyncio.Queue`` holds four
    deques, about 3 KB, even when empty."""

    __slots__ = ("__weakref__", "_items", "_waiter")

    def __init__(self):
        self._items: deque | None = None
        self._waiter: asyncio.Future | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self):
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item


_HOLDING = ()


class _Inbox(LightQueue):
    """A stream's queue of channel-layer messages. An event the stream delivered
    already (on the fast path) is not queued again; while held, what arrives waits
    aside and is queued on release, in order."""

    __slots__ = ("_held", "_stream")

    def __init__(self, stream: RoomStream):
        super().__init__()
        self._stream = stream
        # None: not held. _HOLDING: held, nothing aside yet (every live delivery holds the
        # queue: no list is made for it unless something arrives meanwhile).
        self._held: list | tuple | None = None

    def hold(self) -> None:
        self._held = _HOLDING

    def release(self) -> None:
        held, self._held = self._held, None
        for item in held or ():
            self.put_nowait(item)

    def put_nowait(self, item) -> None:
        if self._held is not None:
            if self._held is _HOLDING:
                self._held = []
            self._held.append(item)
        elif not self._stream.delivered(item):
            super().put_nowait(item)
            self._stream._wake()


# --- The process's connection to the channel layer -----------------------------------------


Listener = Callable[[dict], Awaitable[None]]


class SignedInConnection(Protocol):
    """A signed-in connection (a WebSocket, a streamed HTTP response), as the hub
    closes it."""

    async def revoked(self) -> None:
        """The user's tokens were revoked: end the connection (4403)."""

    async def layer_failed(self) -> None:
        """The channel layer failed: end the connection (1013, reconnect)."""


class Hub:
    """One channel on the layer for the whole process (per event loop): the process
    joins a group once, when its first local listener arrives, leaves it when the
    last goes, and receives each message of the group once, handing it to every
    local listener of that group in turn (the subscriptions of a room, the sockets
    of a user to revoke).

    A message says which group it was sent to (``group``, added by
    ``chat.events.publish``); one without it (sent to a room group by hand) is a
    message of its room's group.

    It also keeps the process's signed-in connections by user (``watch_user``):
    a revocation (``tokens.revoke_all_tokens``, sent to the one revocation group)
    closes the user's, whatever their number, and costs a connection a dict
    entry, not a group, listener and callback of its own.

    A layer that fails closes the signed-in connections, which depend on this
    process's channel: the clients reconnect and resume from their cursor. A
    layer can also fail silently (a pub/sub connection that Redis dropped only
    logs and retries): every ``REALTIME_CHECK_INTERVAL`` the hub
    sends itself a heartbeat, and two intervals without any message while it
    waits for one count as a failure.
    """

    def __init__(self, layer, loop: asyncio.AbstractEventLoop):
        self.layer = layer
        self.loop = loop
        self.channel: str | None = None
        self.listeners: dict[str, dict[Listener, None]] = {}  # group -> listeners, in arrival order
        # user id -> the user's connections here (a list: most users have one or two)
        self.signed_in: dict[int, list[SignedInConnection]] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._heartbeat: asyncio.Task | None = None
        self._waiting = False  # waiting for the layer's next message (not busy dispatching one)
        self._silent_beats = 0

    async def join(self, group: str, listener: Listener) -> None:
        """Have ``listener`` receive the group's messages; the process is in the group
        when this returns."""
        listeners = self.listeners.get(group)
        if listeners is None:
            async with self._lock:
                listeners = self.listeners.get(group)
                if listeners is None:
                    if self.channel is None:
                        self.channel = await self.layer.new_channel()
                        self._silent_beats = 0
                        # Tasks of the whole process: not of the request that happened to start them
                        # (an empty context: no request id on their log lines).
                        self._task = self.loop.create_task(self._receive(), context=contextvars.Context())
                        self._heartbeat = self.loop.create_task(self._beat(self.channel), context=contextvars.Context())
                    await self.layer.group_add(group, self.channel)
                    listeners = self.listeners[group] = {}
        listeners[listener] = None

    def detach(self, group: str, listener: Listener) -> bool:
        """Stop handing the group's messages to ``listener``, at once; True if the
        group has no listener left (``discard`` it then)."""
        listeners = self.listeners.get(group)
        if listeners is None:
            return False
        listeners.pop(listener, None)
        return not listeners

    async def discard(self, group: str) -> None:
        """Leave ``group`` if it still has no listener."""
        async with self._lock:
            listeners = self.listeners.get(group)
            if listeners is not None and not listeners:
                del self.listeners[group]
                with contextlib.suppress(Exception):  # a failing layer: its group expiry drops us
                    await self.layer.group_discard(group, self.channel)

    async def leave(self, group: str, listener: Listener) -> None:
        if self.detach(group, listener):
            await self.discard(group)

    def groups(self) -> set[str]:
        return set(self.listeners)

    async def watch_user(self, user_id: int, connection: SignedInConnection) -> None:
        """Have ``connection`` closed when ``user_id``'s tokens are revoked or the
        layer fails; the process is in the revocation group when this returns."""
        connections = self.signed_in.setdefault(user_id, [])
        if connection not in connections:
            connections.append(connection)
        await self.join(REVOCATION_GROUP, self._revoke)

    async def unwatch_user(self, user_id: int, connection: SignedInConnection) -> None:
        connections = self.signed_in.get(user_id)
        if connections is None or connection not in connections:
            return
        connections.remove(connection)
        if not connections:
            del self.signed_in[user_id]
        if not self.signed_in:  # the process's last signed-in connection: leave the group
            await self.leave(REVOCATION_GROUP, self._revoke)

    async def _revoke(self, message: dict) -> None:
        if message.get("type") != AUTH_REVOKED_TYPE:
            return
        for connection in list(self.signed_in.get(message.get("user"), ())):
            try:
                await connection.revoked()
            except Exception:
                logger.exception("closing a revoked connection failed")

    async def _receive(self) -> None:
        try:
            while True:
                self._waiting = True
                message = await self.layer.receive(self.channel)
                self._waiting, self._silent_beats = False, 0
                await self.dispatch(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("channel layer failed; closing the process's real-time connections", exc_info=True)
            metrics.channel_layer_failed("receive")
            await self._fail()

    async def _beat(self, channel: str) -> None:
        try:
            while self.channel == channel:
                await asyncio.sleep(settings.REALTIME_CHECK_INTERVAL)
                if self.channel != channel:
                    return
                # Silence counts only while the hub waits for the layer: a hub busy with a
                # large fan-out has simply not read its heartbeat yet.
                if self._waiting:
                    self._silent_beats += 1
                    if self._silent_beats > 2:
                        raise ConnectionError("the channel layer stopped delivering this process's messages")
                await self.layer.send(channel, {"type": HEARTBEAT_TYPE})
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("channel layer heartbeat failed; closing the process's real-time connections", exc_info=True)
            metrics.channel_layer_failed("heartbeat")
            await self._fail()

    async def dispatch(self, message: dict) -> None:
        if message.get("type") == HEARTBEAT_TYPE:
            return
        group = message.get("group")
        if group is None and "room" in message:
            group = room_group(message["room"])
        try:
            for listener in list(self.listeners.get(group, ())):
                try:
                    await listener(message)
                except Exception:  # one listener's failure is not the others'
                    logger.exception("real-time listener failed")
        finally:
            metrics.fast_deliveries.flush()

    async def _fail(self) -> None:
        """Forget every group and listener (a new join starts afresh) and close the
        connections that depended on them."""
        connections = [connection for of_user in self.signed_in.values() for connection in of_user]
        self.listeners.clear()
        self.signed_in.clear()
        tasks = [t for t in (self._task, self._heartbeat) if t is not None and t is not asyncio.current_task()]
        self.channel, self._task, self._heartbeat = None, None, None
        for task in tasks:
            task.cancel()
        for connection in connections:
            with contextlib.suppress(Exception):
                await connection.layer_failed()


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """This process's hub, for the running event loop and the current channel layer."""
    loop = asyncio.get_running_loop()
    current = _hubs.get(loop)
    layer = get_channel_layer()
    if current is None or current.layer is not layer:
        for stale in [other for other in _hubs if other.is_closed()]:
            del _hubs[stale]
        current = _hubs[loop] = Hub(layer, loop)
    return current


@dataclass(eq=False)  # compared and hashed by identity (the checker holds a set of them)
class RoomStream:
    """The state of one subscription on one socket.

    ``room_id`` None means every room the user has joined, following joins and
    leaves. ``kinds`` restricts what is yielded (everything is still processed,
    so positions and membership stay exact). ``ephemeral`` adds typing and
    presence of the tracked rooms.
    """

    user: User
    room_id: int | None = None
    after: str | None = None
    kinds: frozenset[str] | None = None
    ephemeral: bool = True
    # The transport's side (``Sink``): live events in order go straight to it; see ``offer``.
    sink: Sink | None = None

    positions: dict[int, int] = field(default_factory=dict)
    _groups: Counter = field(default_factory=Counter)
    _queue: _Inbox = field(init=False)
    _presence_seen: dict[int, str] | None = None  # made at the first presence change
    _done: bool = False
    _idle: bool = False  # waiting for the next message, everything before it delivered
    _early: dict[int, dict[int, dict]] | None = None  # {room: {seq: message}} arrived before their turn
    _early_since: float | None = None
    # Driven by the engine (``Idle``): the generator handed over, and the task
    # resuming it while there is work (None while it waits).
    _driving: bool = False
    _generator: AsyncIterator[Delivery] | None = None
    _driver: asyncio.Task | None = None

    def __post_init__(self):
        self._queue = _Inbox(self)
        self._driving = bool(getattr(self.sink, "drives", False))

    def delivered(self, message: dict) -> bool:
        """Whether this stored event was delivered already (a duplicate by seq)."""
        if message.get("type") != EVENT_TYPE:
            return False
        position = self.positions.get(message["room"])
        return position is not None and message["seq"] <= position

    async def offer(self, message: dict) -> bool:
        """The live path: deliver a live stored event at once, through the sink,
        when it is the next of its room and nothing of this stream is pending; True
        if it is done with. The same checks as the normal path apply (membership
        tracked, seq order); joins, leaves and deletions always take the normal
        path, and so does an event the sink declines. The stream is held still
        meanwhile (the periodic check's wake-up waits), so nothing else can deliver
        this room's events around it."""
        if self.sink is None or not self._idle or not self._queue.empty() or message.get("type") != EVENT_TYPE:
            return False
        if self._early:
            return False
        room, seq, kind = message["room"], message["seq"], message["kind"]
        if self.positions.get(room) != seq - 1 or kind in (MEMBER_JOINED, MEMBER_LEFT, ROOM_DELETED):
            return False
        if not self._wanted(message):
            # Nothing to send (e.g. an edit, for messageAdded): it is passed, as the normal
            # path would pass it, without waking the subscription.
            self.positions[room] = seq
            return True
        self._queue.hold()
        try:
            if await self.sink.deliver(Delivery(message=message, cursor=cursor_with(self.positions, room, seq))):
                self.positions[room] = seq
                metrics.fast_deliveries.pending += 1  # added up by the hub once the event is handed out
                return True
        except Exception:  # e.g. the socket went away: the normal path decides
            logger.warning("fast path failed; normal path", exc_info=True)
        finally:
            self._queue.release()
        return False

    @property
    def follows_membership(self) -> bool:
        return self.room_id is None

    # The process joins a group once for all its subscriptions (``Hub``); a stream
    # counts its own references (a room can be tracked through two paths at once).
    async def _group_add(self, group: str) -> None:
        self._groups[group] += 1
        if self._groups[group] == 1:
            await hub().join(group, self.receive)

    async def _group_discard(self, group: str) -> None:
        if self._groups[group] <= 0:
            return
        self._groups[group] -= 1
        if self._groups[group] == 0:
            del self._groups[group]
            await hub().leave(group, self.receive)

    async def _release(self) -> None:
        """Leave every group: first stop receiving (at once, so that a cancellation
        here cannot leave this stream behind), then leave the groups nobody needs."""
        process = hub()
        empty = [group for group in self._groups if process.detach(group, self.receive)]
        self._groups.clear()
        for group in empty:
            await process.discard(group)

    async def receive(self, message: dict) -> None:
        """A message of one of this stream's groups (from the process's ``Hub``)."""
        if message.get("type") == EVENT_TYPE:
            if await self.offer(message):
                return
        elif message.get("type") != EPHEMERAL_TYPE or not self.ephemeral:
            return
        self._queue.put_nowait(message)

    def _delivery(self, message: dict) -> Delivery:
        return Delivery(message=message, cursor=encode_cursor(self.positions))

    def _wanted(self, message: dict) -> bool:
        return self.kinds is None or message["kind"] in self.kinds

    # --- delivery in seq order -----------------------------------------------------

    async def _accept(self, message: dict) -> AsyncIterator[Delivery]:
        """Deliver a stored event whose predecessors are delivered (or pruned)."""
        room = message["room"]
        if room not in self.positions or message["seq"] <= self.positions[room]:
            return
        self.positions[room] = message["seq"]
        delivery = self._delivery(message)
        if ends_membership(message, self.user.pk):
            del self.positions[room]
            await self._group_discard(room_group(room))
            if not self.follows_membership:
                self._done = True
        if self._wanted(message):
            metrics.delivered("stream")
            yield delivery

    async def _fill(self, rooms: Iterable[int]) -> AsyncIterator[Delivery]:
        """Deliver the stored events after the positions of ``rooms``, in order."""
        pending = {room for room in rooms if room in self.positions}
        while pending:
            wanted = {room: self.positions[room] for room in pending if room in self.positions}
            batch = await database_sync_to_async(_events_after)(wanted, FILL_BATCH)
            for message in batch:
                async for delivery in self._accept(message):
                    yield delivery
            if len(batch) < FILL_BATCH:
                return
            pending = {room for room in pending if room in self.positions}

    async def _track(self, room: int, position: int | None = None) -> AsyncIterator[Delivery]:
        """Start following a room the user (now) belongs to, from their join."""
        await self._group_add(room_group(room))
        joined = await database_sync_to_async(_joined_rooms)(self.user.pk, room)
        if room not in joined:  # joined and left again, or the room is gone
            await self._group_discard(room_group(room))
            return
        joined_seq, _ = joined[room]
        self.positions[room] = max(position or 0, joined_seq - 1, 0)
        async for delivery in self._fill([room]):
            yield delivery

    async def _on_event(self, message: dict) -> AsyncIterator[Delivery]:
        room, seq = message["room"], message["seq"]
        if room not in self.positions:
            # Another subscription's room, or a room this user just joined
            # (their own MemberJoined reaches user.<id>).
            if (
                self.follows_membership
                and message["kind"] == MEMBER_JOINED
                and _user_id(message["payload"].get("user")) == self.user.pk
            ):
                async for delivery in self._track(room):
                    yield delivery
            return
        if self.delivered(message):
            return  # duplicate (replayed already, or received on two groups)
        if seq > self.positions[room] + 1:
            # Early: two senders' events may be published in the other order, and the
            # missing one then arrives right behind. Keep this one a moment
            # (REALTIME_REORDER_WAIT) before asking the table, which has everything: a
            # query per subscriber per inversion made busy rooms hammer the database.
            if self._early is None:
                self._early, self._early_since = {}, asyncio.get_running_loop().time()
            self._early.setdefault(room, {})[seq] = message
            return
        async for delivery in self._accept(message):
            yield delivery

    async def _drain_early(self) -> AsyncIterator[Delivery]:
        """Deliver the kept early events that are next in their room's order, and
        forget those delivered meanwhile (by a fill)."""
        for room in list(self._early or ()):
            early = self._early[room]
            while room in self.positions and (message := early.pop(self.positions[room] + 1, None)) is not None:
                async for delivery in self._accept(message):
                    yield delivery
            position = self.positions.get(room)
            for seq in [seq for seq in early if position is None or seq <= position]:
                del early[seq]
            if not early:
                del self._early[room]
        if not self._early:
            self._early = self._early_since = None

    async def _next_message(self) -> dict | None:
        """The next message of the queue; None when early events have waited long enough."""
        if not self._early:
            return await self._queue.get()
        wait = self._early_since + reorder_wait() - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(self._queue.get(), max(wait, 0))
        except TimeoutError:
            return None

    def _on_ephemeral(self, message: dict) -> Delivery | None:
        if message.get("room") not in self.positions or not self._wanted(message):
            return None
        payload = message.get("payload") or {}
        if message["kind"] == TYPING_CHANGED and _user_id(payload.get("user")) == self.user.pk:
            return None  # your own typing is not news to you
        if message["kind"] == PRESENCE_CHANGED:
            # Sent once per shared room: deliver each change of a user once.
            key = f"{payload.get('online')}@{payload.get('at')}"
            user = _user_id(payload.get("user"))
            if self._presence_seen is None:
                self._presence_seen = {}
            elif self._presence_seen.get(user) == key:
                return None
            self._presence_seen[user] = key
        return self._delivery(message)

    async def _check(self) -> AsyncIterator[Delivery]:
        """The periodic repair: a dropped last event, a dropped join or leave."""
        if self.follows_membership:
            joined = await database_sync_to_async(_joined_rooms)(self.user.pk, None)
            for room in joined:
                if room not in self.positions:
                    async for delivery in self._track(room):
                        yield delivery
            behind = [room for room, seq in self.positions.items() if room not in joined or joined[room][1] > seq]
            if behind:
                metrics.gap_filled()
            async for delivery in self._fill(behind):
                yield delivery
            for room in [room for room in self.positions if room not in joined]:
                # Membership gone without an event we could see: stop silently.
                del self.positions[room]
                await self._group_discard(room_group(room))
        else:
            latest = await database_sync_to_async(_last_seqs)(self.positions)
            behind = [room for room, seq in self.positions.items() if latest.get(room, seq) > seq]
            if behind:
                metrics.gap_filled()
            async for delivery in self._fill(behind):
                yield delivery
            if self.positions:
                joined = await database_sync_to_async(_joined_rooms)(self.user.pk, self.room_id)
                if self.room_id not in joined:
                    self.positions.clear()
                    self._done = True

    # --- the loop ----------------------------------------------------------------

    async def run(self) -> AsyncIterator[Delivery]:
        resuming = self.after is not None
        if self.room_id is not None:
            await database_sync_to_async(_authorize_room)(self.user, self.room_id)
        try:
            # The start-up's locals live in a frame of their own: this generator's
            # frame stays for the subscription's lifetime, and holds only the loop's.
            await self._start()
            async for delivery in self._fill(list(self.positions)):
                if resuming:
                    metrics.replayed()
                yield delivery

            # The process-wide checker wakes this subscription (CHECK_TYPE) when the
            # database shows it behind or its memberships changed unseen.
            checker.register(self)
            while not self._done:
                if self._driving and self._queue.empty() and not self._early:
                    # Nothing of the last delivery stays held while idle.
                    delivery = message = None
                    self._idle = True
                    try:
                        yield Idle(self)
                    finally:
                        self._idle = False
                    continue
                self._idle = not self._early
                try:
                    message = await self._next_message()
                finally:
                    self._idle = False
                if message is None:  # early events waited in vain: a real gap, fill it
                    metrics.gap_filled()
                    async for delivery in self._fill(list(self._early or ())):
                        yield delivery
                elif message.get("type") == EVENT_TYPE:
                    async for delivery in self._on_event(message):
                        yield delivery
                elif message.get("type") == CHECK_TYPE:
                    async for delivery in self._check():
                        yield delivery
                else:
                    delivery = self._on_ephemeral(message)
                    if delivery is not None:
                        metrics.delivered("stream")
                        yield delivery
                if self._early:
                    async for delivery in self._drain_early():
                        yield delivery
        finally:
            checker.unregister(self)
            await self._release()

    async def _start(self) -> None:
        """Join the groups, then set the positions: the live end, or the cursor's."""
        start = None if self.after is None else decode_cursor(self.after)
        # Groups first, positions second: see the module docstring.
        if self.follows_membership:
            await self._group_add(user_group(self.user.pk))
            rooms = await database_sync_to_async(_joined_rooms)(self.user.pk, None)
        else:
            rooms = {self.room_id: (0, 0)}
        for room in rooms:
            await self._group_add(room_group(room))
        joined = await database_sync_to_async(_joined_rooms)(self.user.pk, self.room_id)
        if self.room_id is not None and self.room_id not in joined:
            raise NotFound("Room not found.")
        for room in list(rooms):
            if room not in joined:  # left in between
                await self._group_discard(room_group(room))
        for room, (joined_seq, last_seq) in joined.items():
            if room not in rooms:  # joined in between
                await self._group_add(room_group(room))
            if start is None:
                self.positions[room] = last_seq
            else:
                # Replay from the cursor, never from before the user joined.
                self.positions[room] = max(start.get(room, 0), joined_seq - 1, 0)

    # --- driven by the engine ------------------------------------------------------

    def _hand_over(self, generator: AsyncIterator[Delivery]) -> None:
        self._generator = generator
        self._wake()

    def _wake(self) -> None:
        """Resume the handed-over generator when a message is queued for it."""
        if self._generator is not None and self._driver is None and not self._queue.empty():
            self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def _drive(self) -> None:
        """Run the generator until it is idle again, writing what it delivers
        through the sink: the subscription's own path, without a task of its own
        while it waits."""
        generator = self._generator
        try:
            while True:
                delivery = await anext(generator)
                if isinstance(delivery, Idle):
                    return
                await self.sink.send(delivery)
                if self._generator is None:  # stopped while sending: end it here
                    with contextlib.suppress(Exception):
                        await generator.aclose()
                    return
        except StopAsyncIteration:
            self._generator = None
            await self.sink.complete()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - ends this subscription only, as an error result
            self._generator = None
            await self.sink.fail(error)
        finally:
            self._driver = None

    async def _stop_driving(self) -> None:
        """End a handed-over subscription (the client stopped it or went away):
        leave its groups and stop the periodic check for it."""
        driver, generator = self._driver, self._generator
        self._generator = None
        if driver is not None and driver is not asyncio.current_task():
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await driver
        if generator is not None and driver is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await generator.aclose()

    def behind(self, last_seqs: Mapping[int, int]) -> bool:
        """Whether this subscription has not delivered up to ``last_seqs``."""
        return any(last_seqs.get(room, seq) > seq for room, seq in self.positions.items())

    def membership_differs(self, joined: Mapping[int, set[int]]) -> bool:
        """Whether the user's memberships differ from the rooms this subscription
        tracks (a lost join, leave or deletion, or one still on its way)."""
        rooms = joined.get(self.user.pk, set())
        if self.follows_membership:
            return rooms != set(self.positions)
        return bool(self.positions) and self.room_id not in rooms


# --- The periodic check, once per process ----------------------------------------------


def _check_snapshot(room_ids: list[int], user_ids: list[int]) -> tuple[dict[int, int], dict[int, set[int]]]:
    """Two queries for every subscription of the process: the rooms' latest seq and
    the users' live memberships."""
    last_seqs = dict(Room.objects.filter(pk__in=room_ids).values_list("pk", "last_seq"))
    joined: dict[int, set[int]] = {}
    memberships = Membership.objects.filter(user_id__in=user_ids, room__deleted_at__isnull=True)
    for user_id, room_id in memberships.values_list("user_id", "room_id"):
        joined.setdefault(user_id, set()).add(room_id)
    return last_seqs, joined


class Checker:
    """Every ``REALTIME_CHECK_INTERVAL`` seconds, compares what the subscriptions of
    this process hold with the database (two queries in all, however many
    subscriptions) and wakes those that are behind: a dropped last event, or a
    dropped join, leave or deletion, is repaired within two intervals.

    Two, because what the database shows *now* may still be on its way to the
    subscribers: a subscription is woken only for events the previous check had
    seen (committed an interval ago, and still not delivered), and for a
    membership that differed at two checks in a row. Comparing with the current
    state woke every subscriber of a busy room at every check (each then making
    its own queries): thousands of queries per interval at 1000 subscribers,
    found in the fan-out profile (issue 8)."""

    def __init__(self):
        self.streams: set[RoomStream] = set()
        self.task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._seen_seqs: dict[int, int] = {}
        self._differed: set[RoomStream] = set()

    def register(self, stream: RoomStream) -> None:
        self.streams.add(stream)
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop = loop
            self.task = loop.create_task(self.run(), context=contextvars.Context())

    def unregister(self, stream: RoomStream) -> None:
        self.streams.discard(stream)
        self._differed.discard(stream)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.streams and self.loop is loop:
            await asyncio.sleep(settings.REALTIME_CHECK_INTERVAL)
            streams = [s for s in self.streams if s.positions or s.follows_membership]
            if not streams:
                continue
            rooms = sorted({room for s in streams for room in s.positions})
            users = sorted({s.user.pk for s in streams})
            try:
                last_seqs, joined = await database_sync_to_async(_check_snapshot)(rooms, users)
            except Exception:  # the database is down: try again next interval
                logger.warning("realtime check failed", exc_info=True)
                continue
            self.wake(streams, last_seqs, joined)
            # Not held while asleep: a set of rooms per user, and streams that may close meanwhile.
            streams = joined = users = rooms = None

    def wake(self, streams: Iterable[RoomStream], last_seqs: dict[int, int], joined: Mapping[int, set[int]]) -> None:
        """Wake the subscriptions behind what the previous check saw, or whose
        memberships differed at this check and the previous one."""
        seen, self._seen_seqs = self._seen_seqs, last_seqs
        differed, self._differed = self._differed, set()
        for stream in streams:
            wake = stream.behind(seen)
            if stream.membership_differs(joined):
                self._differed.add(stream)
                wake = wake or stream in differed
            if wake:
                stream._queue.put_nowait({"type": CHECK_TYPE})


checker = Checker()


_kinds: dict[frozenset[str], frozenset[str]] = {}


def _shared_kinds(kinds: Iterable[str] | None) -> frozenset[str] | None:
    """One frozenset per set of kinds, shared by the subscriptions asking for it (a
    frozenset costs about 200 bytes, and there are a handful of distinct sets)."""
    if kinds is None:
        return None
    kinds = frozenset(kinds)
    return _kinds.setdefault(kinds, kinds)


def room_events(
    user: User,
    *,
    room_id: int | None = None,
    after: str | None = None,
    kinds: Iterable[str] | None = None,
    ephemeral: bool = True,
    sink: Sink | None = None,
) -> AsyncIterator[Delivery]:
    """The events of one room (``room_id``, members only: else ``NotFound``) or of
    every room ``user`` has joined, resuming after ``after`` if given."""
    if room_id is not None:
        try:
            room_id = int(room_id)
        except (TypeError, ValueError):
            raise NotFound("Room not found.") from None
    stream = RoomStream(
        user=user,
        room_id=room_id,
        after=after,
        kinds=_shared_kinds(kinds),
        ephemeral=ephemeral,
        sink=sink,
    )
    return stream.run()


async def notifications(user: User) -> AsyncIterator[dict]:
    """The ``chat.notification`` messages sent to ``user.<id>`` (not stored, no resume)."""
    inbox = LightQueue()

    async def receive(message: dict) -> None:
        if message.get("type") == NOTIFICATION_TYPE:
            inbox.put_nowait(message)

    process, group = hub(), user_group(user.pk)
    await process.join(group, receive)
    try:
        while True:
            yield await inbox.get()
    finally:
        await process.leave(group, receive)


# --- Retention ---------------------------------------------------------------------------


def prune_events(older_than, batch_size: int = 5000) -> int:
    """Delete events older than ``older_than`` (a timedelta), keeping each room's
    latest event; returns how many went. A cursor older than the retention then
    resumes at the oldest event kept (what was pruned cannot be replayed)."""
    cutoff = timezone.now() - older_than
    stale = Event.objects.filter(created_at__lt=cutoff).exclude(seq=F("room__last_seq"))
    deleted = 0
    while True:
        ids = list(stale.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += Event.objects.filter(pk__in=ids).delete()[0]
