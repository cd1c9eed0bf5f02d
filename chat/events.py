"""The one path by which changes reach subscribers.

A service writes its change and, in the same transaction, an ``Event`` row
numbered by the room's sequence (``record_event``). After commit the event is
published to the channel layer. A crash between commit and publish, or a
channel layer that drops the message, loses nothing: the row stays in the
table, and subscriptions fill gaps and resume from it.

Group names: ``room.<id>`` for a room's events, ``user.<id>`` for what
concerns one user (their own membership changes, notifications).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat.errors import NotFound
from chat.models import Attachment, Event, Message, Room, User

logger = logging.getLogger(__name__)

EVENT_TYPE = "chat.event"  # channel-layer message type of stored room events
EPHEMERAL_TYPE = "chat.ephemeral"  # typing, presence: published, never stored
NOTIFICATION_TYPE = "chat.notification"


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def lock_room(room_id: int) -> Room:
    """Lock a live room's row for the rest of the transaction.

    Every write that records an event takes this lock first, so that per room
    sequence numbers follow commit order (ids from a global sequence do not on
    Postgres under concurrency). On SQLite, IMMEDIATE transactions already
    serialize writers.
    """
    try:
        return Room.objects.select_for_update().get(pk=room_id, deleted_at__isnull=True)
    except Room.DoesNotExist:
        raise NotFound("Room not found.") from None


def record_event(
    room: Room,
    kind: str,
    payload: dict,
    actor: User | None = None,
    also_notify: Iterable[int] = (),
) -> Event:
    """Store an event for ``room`` and publish it once the transaction commits.

    Precondition: inside ``transaction.atomic()`` with ``room`` from ``lock_room``.
    ``also_notify`` lists user ids whose ``user.<id>`` group gets the event too
    (a user who just joined is not in the room's group yet).

    A payload that carries a message snapshot under ``"message"`` is content:
    the event is indexed by that message, so that deleting the message redacts
    it (chat/redaction.py).
    """
    seq = room.last_seq + 1
    Room.objects.filter(pk=room.pk).update(last_seq=seq)
    room.last_seq = seq
    snapshot = payload.get("message")
    message_id = snapshot.get("id") if isinstance(snapshot, dict) else None
    event = Event.objects.create(room=room, seq=seq, kind=kind, payload=payload, actor=actor, message_id=message_id)
    message = event_message(event)
    groups = [room_group(room.pk), *(user_group(uid) for uid in also_notify)]
    transaction.on_commit(partial(publish, groups, message))
    return event


def event_message(event: Event) -> dict:
    """The channel-layer message for a stored event (also used for replays)."""
    return {
        "type": EVENT_TYPE,
        "room": event.room_id,
        "seq": event.seq,
        "kind": event.kind,
        "payload": event.payload,
        "created_at": event.created_at.isoformat(),
    }


def publish(groups: Iterable[str], message: dict) -> None:
    """Send ``message`` to each group, best effort: the event log is the source of
    truth, so a failing channel layer is logged, never raised to the caller."""
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            # Each copy says its group: a process receives it once for all its
            # listeners of that group (chat.realtime.Hub).
            async_to_sync(layer.group_send)(group, {**message, "group": group})
        except Exception:
            logger.warning("publish to %s failed", group, exc_info=True)


def publish_on_commit(groups: Iterable[str], message: dict) -> None:
    transaction.on_commit(partial(publish, list(groups), message))


# --- Snapshots: what an event carries, so subscribers need no query to render it.


def user_snapshot(user: User | None) -> dict | None:
    if user is None:
        return None
    return {"id": user.pk, "username": user.username, "display_name": user.display_name}


def attachment_snapshot(attachment: Attachment) -> dict:
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "width": attachment.width,
        "height": attachment.height,
        "has_thumbnail": bool(attachment.thumbnail),
    }


def message_snapshot(message: Message, attachments: Iterable[Attachment] = ()) -> dict:
    return {
        "id": message.pk,
        "room_id": message.room_id,
        "sender": user_snapshot(message.sender),
        "text": message.text,
        "client_id": message.client_id,
        "reply_to_id": message.reply_to_id,
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "deleted_at": message.deleted_at.isoformat() if message.deleted_at else None,
        "attachments": [attachment_snapshot(a) for a in attachments],
    }


def room_snapshot(room: Room) -> dict:
    return {
        "id": room.pk,
        "name": room.name,
        "topic": room.topic,
        "kind": room.kind,
        "is_private": room.is_private,
    }
