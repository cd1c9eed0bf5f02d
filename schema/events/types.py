"""Real-time event types: what `roomEvents`, `messageAdded` and `notifications` yield.

Built from the snapshot an event carries (chat/events.py), once per event per
process (a small LRU keyed by room and seq), never with a query per subscriber:
the message, its sender and the room are unsaved-looking model instances made
with ``Model.from_db`` so that strawberry-django resolves them like fetched
rows. Fields the snapshot lacks load lazily (once, on the shared instance).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from asgiref.sync import sync_to_async
from django.utils.dateparse import parse_datetime
from strawberry.types import Info
from strawberry_django.optimizer import optimize

from chat import access, redaction
from chat.models import Attachment, Message, Room, User
from chat.realtime import Delivery
from schema.accounts.types import UserType
from schema.context import viewer
from schema.global_ids import encode_id
from schema.live.django_adapter import set_prefetched
from schema.live.shared_events import event_identity

if TYPE_CHECKING:
    from schema.messages.types import MessageType
    from schema.rooms.types import RoomRole, RoomType

LazyRoom = Annotated["RoomType", strawberry.lazy("schema.rooms.types")]
LazyMessage = Annotated["MessageType", strawberry.lazy("schema.messages.types")]
LazyRole = Annotated["RoomRole", strawberry.lazy("schema.rooms.types")]


# --- Model instances from snapshots --------------------------------------------------


def _dt(value) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else value


def _from_db(model, values: dict):
    """A model instance as if loaded with ``only(*values)``: other fields load lazily."""
    return model.from_db("default", list(values), list(values.values()))


def user_from_snapshot(snapshot: dict | None) -> User | None:
    if not snapshot:
        return None
    return _from_db(
        User, {"id": snapshot["id"], "username": snapshot["username"], "display_name": snapshot["display_name"]}
    )


def room_from_snapshot(snapshot: dict) -> Room:
    return _from_db(
        Room,
        {
            "id": snapshot["id"],
            "name": snapshot["name"],
            "topic": snapshot["topic"],
            "kind": snapshot["kind"],
            "is_private": snapshot["is_private"],
        },
    )


def message_from_snapshot(snapshot: dict, room: Room | None, sender_exists: bool = True) -> Message:
    sender = user_from_snapshot(snapshot.get("sender")) if sender_exists else None
    message = _from_db(
        Message,
        {
            "id": snapshot["id"],
            "room_id": snapshot["room_id"],
            "sender_id": sender.pk if sender else None,
            "text": snapshot["text"],
            "client_id": snapshot.get("client_id"),
            "reply_to_id": snapshot.get("reply_to_id"),
            "created_at": _dt(snapshot["created_at"]),
            "edited_at": _dt(snapshot.get("edited_at")),
            "deleted_at": _dt(snapshot.get("deleted_at")),
        },
    )
    message.sender = sender  # a deleted account: sender null, no query
    if room is not None:
        message.room = room
    attachments = [
        _from_db(
            Attachment,
            {
                "id": a["id"],
                "message_id": snapshot["id"],
                "name": a["name"],
                "content_type": a["content_type"],
                "size": a["size"],
                "width": a.get("width"),
                "height": a.get("height"),
            },
        )
        for a in snapshot.get("attachments") or []
    ]
    set_prefetched(message, "attachments", Attachment.objects.filter(message_id=snapshot["id"]), attachments)
    return message


class _LRU:
    """A small thread-safe LRU with an optional time to live."""

    def __init__(self, size: int, ttl: float | None = None):
        self.size, self.ttl = size, ttl
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, stored_at = item
            if self.ttl is not None and time.monotonic() - stored_at > self.ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = (value, time.monotonic())
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# Room name, topic... for events whose payload has no room snapshot. Refreshed by
# the RoomUpdated snapshots that pass through this process, and after 30 s.
_rooms = _LRU(2048, ttl=30)
# Model instances per stored event, shared by all subscribers of the process.
_event_objects = _LRU(4096)


# Whether a sender still has an account: a replayed snapshot of a deleted
# account's message renders with sender null. Checked once per event per process.
_users = _LRU(4096, ttl=10)


def _user_id(value) -> int | None:
    return value.get("id") if isinstance(value, dict) else None


async def _load_once(lru: _LRU, key, load):
    """``lru``'s value for ``key``, loaded with ``load`` (sync, in a worker thread)
    on a miss, once however many subscribers miss at the same moment: an event
    reaches all the subscribers of a room together, and without this each of
    them would make the same query."""
    flight = (id(lru), key)
    while True:
        value = lru.get(key)
        if value is not None:
            return value
        pending = _loading.get(flight)
        if pending is None:
            break
        await asyncio.wait([pending])  # then read the cache again (or load, if that load failed)
    done = asyncio.get_running_loop().create_future()
    _loading[flight] = done
    try:
        value = await sync_to_async(load)()
        lru.put(key, value)
        return value
    finally:
        del _loading[flight]
        done.set_result(None)


_loading: dict[tuple, asyncio.Future] = {}


async def _user_exists(user_id: int) -> bool:
    # A lambda: the query is built on a miss only (building it costs more than the cache hit).
    return await _load_once(_users, user_id, lambda: User.objects.filter(pk=user_id).exists())


def clear_caches() -> None:
    """Forget every cached object (what waiting for the time to live does)."""
    for lru in (_rooms, _event_objects, _users, _built):
        lru.clear()


def _load_room(room_id: int) -> Room:
    room = Room.objects.filter(pk=room_id).only("id", "name", "topic", "kind", "is_private").first()
    return room if room is not None else _from_db(Room, {"id": room_id})


async def _room(room_id: int, snapshot: dict | None) -> Room:
    if snapshot is not None:
        room = room_from_snapshot(snapshot)
        _rooms.put(room_id, room)
        return room
    return await _load_once(_rooms, room_id, lambda: _load_room(room_id))


async def event_objects(message: dict) -> dict:
    """The model instances of a channel-layer event message, once per (room, seq, revision)."""
    payload = message.get("payload") or {}
    snapshot = payload.get("message") if isinstance(payload.get("message"), dict) else None
    sender = _user_id(snapshot.get("sender")) if snapshot else None
    sender_exists = sender is None or await _user_exists(sender)
    key = (message["room"], message.get("seq"), sender_exists, redaction.revision(message.get("payload")))
    cached = _event_objects.get(key) if key[1] is not None else None
    if cached is not None:
        return cached
    room = await _room(message["room"], payload.get("room") if isinstance(payload.get("room"), dict) else None)
    objects: dict = {"room": room}
    if snapshot is not None:
        objects["message"] = message_from_snapshot(snapshot, room, sender_exists=sender_exists)
    for name in ("user", "by"):
        if isinstance(payload.get(name), dict):
            objects[name] = user_from_snapshot(payload[name])
    if key[1] is not None:
        _event_objects.put(key, objects)
    return objects


# --- GraphQL types ----------------------------------------------------------------------

# Room fields a snapshot answers; anything else selected is fetched for the subscriber.
SNAPSHOT_ROOM_FIELDS = {"id", "name", "topic", "kind", "isPrivate", "__typename"}


def _selection_names(selections) -> set[str] | None:
    names: set[str] = set()
    for selection in selections:
        name = getattr(selection, "name", None)
        if name is None:  # a fragment: look inside
            inner = _selection_names(getattr(selection, "selections", []))
            if inner is None:
                return None
            names |= inner
        else:
            names.add(name)
    return names


async def resolve_room(room: Room, info: Info):
    """The room from the snapshot when that answers the selection, else one query
    (viewer-dependent fields like ``unreadCount`` or ``myRole``)."""
    field = info.selected_fields[0] if info.selected_fields else None
    names = _selection_names(field.selections) if field else None
    if names is not None and names <= SNAPSHOT_ROOM_FIELDS:
        return room
    user = viewer(info)

    def fetch():
        qs = optimize(Room.objects.filter(pk=room.pk, deleted_at__isnull=True), info)
        fetched = qs.first()
        return fetched if fetched is not None and (access.rooms_joined_by(user).filter(pk=room.pk).exists()) else None

    fetched = await sync_to_async(fetch)()
    return fetched if fetched is not None else room


@strawberry.interface(name="RoomEvent", description="Something that happened in a room.")
class RoomEvent:
    cursor: str = strawberry.field(
        description=(
            "Where you are after this event, in every room of the subscription: pass it as `after` "
            "to resume exactly here (opaque; keep the latest)."
        )
    )
    seq: int | None = strawberry.field(
        description="The event's number in its room (contiguous per room); null for typing and presence."
    )
    created_at: datetime = strawberry.field(description="When it happened.")
    room_obj: strawberry.Private[Room]
    # Which stored event, in which version (schema/live/shared_events.event_identity):
    # part of every render cache key; None for ephemeral events.
    identity: strawberry.Private[tuple | None]

    @strawberry.field(description="The room it happened in.")
    async def room(self, info: Info) -> LazyRoom:
        return await resolve_room(self.room_obj, info)


@strawberry.type(description="A message was sent.")
class MessageAdded(RoomEvent):
    message: LazyMessage


@strawberry.type(description="A message's text was edited.")
class MessageEdited(RoomEvent):
    message: LazyMessage


@strawberry.type(description="A message was deleted: `message` is its tombstone.")
class MessageDeleted(RoomEvent):
    message: LazyMessage


@strawberry.type(description="Someone joined the room or was added to it.")
class MemberJoined(RoomEvent):
    user: UserType
    role: LazyRole
    by: UserType | None = strawberry.field(description="Who added them; null if they joined themselves.")


@strawberry.enum(name="MemberLeftReason")
class MemberLeftReason(Enum):
    LEFT = "left"
    REMOVED = "removed"
    DELETED = strawberry.enum_value(
        "deleted", description="They deleted their account (in group rooms and direct chats alike)."
    )
    BANNED = strawberry.enum_value("banned", description="A moderator banned them (`banMember`).")


@strawberry.type(
    description=(
        "Someone left the room, was removed, or deleted their account. Your own is the last event of that room."
    )
)
class MemberLeft(RoomEvent):
    user: UserType
    reason: MemberLeftReason
    by: UserType | None = strawberry.field(description="Who removed them; null if they left.")


@strawberry.type(
    description=(
        "A member's role changed. A handover of ownership is two of these: the new owner's, then the "
        "previous owner's (now admin)."
    )
)
class MemberRoleChanged(RoomEvent):
    user: UserType
    role: LazyRole = strawberry.field(description="The member's new role.")
    by: UserType | None = strawberry.field(description="Who changed it.")


@strawberry.type(
    description=(
        "A moderator muted a member (`muteMember`): they read but cannot write until `until` "
        "(null: until unmuted). No event marks the end of a timed mute: clients know `until`."
    )
)
class MemberMuted(RoomEvent):
    user: UserType
    by: UserType | None = strawberry.field(description="Who muted them.")
    until: datetime | None = strawberry.field(description="When the mute ends; null: until unmuted.")


@strawberry.type(description="A moderator lifted a member's mute (`unmuteMember`).")
class MemberUnmuted(RoomEvent):
    user: UserType
    by: UserType | None = strawberry.field(description="Who unmuted them.")


@strawberry.type(description="The room's name, topic or privacy changed: `room` has the new values.")
class RoomUpdated(RoomEvent):
    pass


@strawberry.type(description="The room was deleted. Nothing more comes from it.")
class RoomDeleted(RoomEvent):
    pass


@strawberry.type(description="A member read up to a message.")
class ReadReceipt(RoomEvent):
    user: UserType
    message_id: strawberry.ID = strawberry.field(description="The global ID of the last message they read.")


@strawberry.type(description="Someone reacted to a message (`addReaction`).")
class ReactionAdded(RoomEvent):
    message: LazyMessage = strawberry.field(description="The message (its `reactions` are the current ones).")
    emoji: str = strawberry.field(description="The emoji added.")
    user: UserType = strawberry.field(description="Who reacted.")


@strawberry.type(description="Someone took back a reaction (`removeReaction`).")
class ReactionRemoved(RoomEvent):
    message: LazyMessage = strawberry.field(description="The message (its `reactions` are the current ones).")
    emoji: str = strawberry.field(description="The emoji removed.")
    user: UserType = strawberry.field(description="Whose reaction it was.")


@strawberry.type(description="A message was pinned (`pinMessage`); it is now in the room's `pinnedMessages`.")
class MessagePinned(RoomEvent):
    message: LazyMessage
    by: UserType | None = strawberry.field(description="Who pinned it; null if that account is gone.")


@strawberry.type(description="A message was unpinned (`unpinMessage`).")
class MessageUnpinned(RoomEvent):
    message: LazyMessage
    by: UserType | None = strawberry.field(description="Who unpinned it; null if that account is gone.")


@strawberry.type(description="Another member started or stopped typing (ephemeral: not replayed).")
class TypingChanged(RoomEvent):
    user: UserType
    typing: bool


@strawberry.type(description="A member of a room you share came online or went offline (ephemeral: not replayed).")
class PresenceChanged(RoomEvent):
    user: UserType
    online: bool
    last_seen_at: datetime | None


# Finished event objects of stored events, per (event identity, cursor): the subscribers of
# a room at the same position share one. As short-lived as the sender check above.
_built = _LRU(4096, ttl=10)


async def build_event(delivery: Delivery) -> RoomEvent:
    """The GraphQL object of one delivery, shared by the deliveries of the same
    stored event at the same cursor (the parts come from the LRUs above)."""
    identity = event_identity(delivery.message)
    if identity is None:  # ephemeral: per delivery
        return await _build_event(delivery, identity)
    key = (identity, delivery.cursor)
    event = _built.get(key)
    if event is None:
        event = await _build_event(delivery, identity)
        _built.put(key, event)
    return event


async def _build_event(delivery: Delivery, identity: tuple | None) -> RoomEvent:
    message = delivery.message
    objects = await event_objects(message)
    payload = message.get("payload") or {}
    common = {
        "cursor": delivery.cursor,
        "seq": message.get("seq"),
        "created_at": _dt(message["created_at"]),
        "room_obj": objects["room"],
        "identity": identity,
    }
    kind = message["kind"]
    if kind in ("MessageAdded", "MessageEdited", "MessageDeleted"):
        cls = {"MessageAdded": MessageAdded, "MessageEdited": MessageEdited, "MessageDeleted": MessageDeleted}[kind]
        return cls(message=objects["message"], **common)
    if kind == "MemberJoined":
        from schema.rooms.types import RoomRole as Role

        return MemberJoined(user=objects["user"], role=Role(payload["role"]), by=objects.get("by"), **common)
    if kind == "MemberRoleChanged":
        from schema.rooms.types import RoomRole as Role

        return MemberRoleChanged(user=objects["user"], role=Role(payload["role"]), by=objects.get("by"), **common)
    if kind == "MemberLeft":
        return MemberLeft(
            user=objects["user"], reason=MemberLeftReason(payload["reason"]), by=objects.get("by"), **common
        )
    if kind == "MemberMuted":
        return MemberMuted(user=objects["user"], by=objects.get("by"), until=_dt(payload.get("until")), **common)
    if kind == "MemberUnmuted":
        return MemberUnmuted(user=objects["user"], by=objects.get("by"), **common)
    if kind == "RoomUpdated":
        return RoomUpdated(**common)
    if kind == "RoomDeleted":
        return RoomDeleted(**common)
    if kind == "ReadReceipt":
        return ReadReceipt(user=objects["user"], message_id=encode_id("Message", payload["message_id"]), **common)
    if kind in ("ReactionAdded", "ReactionRemoved"):
        cls = ReactionAdded if kind == "ReactionAdded" else ReactionRemoved
        return cls(message=objects["message"], emoji=payload["emoji"], user=objects["user"], **common)
    if kind in ("MessagePinned", "MessageUnpinned"):
        cls = MessagePinned if kind == "MessagePinned" else MessageUnpinned
        return cls(message=objects["message"], by=objects.get("by"), **common)
    if kind == "TypingChanged":
        return TypingChanged(user=objects["user"], typing=payload["typing"], **common)
    if kind == "PresenceChanged":
        return PresenceChanged(
            user=objects["user"], online=payload["online"], last_seen_at=_dt(payload.get("last_seen_at")), **common
        )
    raise ValueError(f"unknown event kind {kind}")


EVENT_TYPES = [
    MessageAdded,
    MessageEdited,
    MessageDeleted,
    MemberJoined,
    MemberLeft,
    MemberRoleChanged,
    MemberMuted,
    MemberUnmuted,
    RoomUpdated,
    RoomDeleted,
    ReadReceipt,
    ReactionAdded,
    ReactionRemoved,
    MessagePinned,
    MessageUnpinned,
    TypingChanged,
    PresenceChanged,
]
