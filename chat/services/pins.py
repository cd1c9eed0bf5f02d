"""Pins: a room's owner and admins (either member of a direct chat) keep important
messages at hand. Pinning what is pinned, or unpinning what is not, changes
nothing and records no event."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from chat import access, events, ratelimit
from chat.errors import BadUserInput
from chat.models import Event, Membership, Message
from chat.services.reactions import lock_message, message_snapshot, refuse_deleted
from chat.services.rooms import parse_id

MAX_PINS_PER_ROOM = 50


def _prepare(actor, message_id) -> tuple:
    actor = access.require_user(actor)
    message, membership = access.access_message_as_member(actor, parse_id(message_id, "Message"))
    access.require_pin_rights(message.room, membership)
    ratelimit.throttle("pin", actor)
    return actor, message


def _lock(actor, message: Message):
    room, message = lock_message(actor, message)
    # The role may have changed since the first check: decide again under the lock.
    access.require_pin_rights(room, Membership.objects.get(room=room, user=actor))
    return room, message


def pin_message(actor, message_id) -> Message:
    """Pin a message (not a deleted one); at most ``MAX_PINS_PER_ROOM`` per room."""
    actor, message = _prepare(actor, message_id)
    refuse_deleted(message)
    with transaction.atomic():
        room, message = _lock(actor, message)
        if message.pinned_at is not None:
            return message
        if Message.objects.filter(room=room, pinned_at__isnull=False).count() >= MAX_PINS_PER_ROOM:
            raise BadUserInput(
                f"A room has at most {MAX_PINS_PER_ROOM} pinned messages; unpin one first.",
                fields={"id": [f"At most {MAX_PINS_PER_ROOM} pins per room."]},
            )
        message.pinned_at, message.pinned_by = timezone.now(), actor
        message.save(update_fields=["pinned_at", "pinned_by"])
        events.record_event(
            room,
            Event.Kind.MESSAGE_PINNED,
            {"message": message_snapshot(message), "by": events.user_snapshot(actor)},
            actor=actor,
        )
    return message


def unpin_message(actor, message_id) -> Message:
    """Unpin a message; nothing happens if it is not pinned (deleted messages never are)."""
    actor, message = _prepare(actor, message_id)
    if message.pinned_at is None:
        return message
    with transaction.atomic():
        room, message = _lock(actor, message)
        if message.pinned_at is None:
            return message
        message.pinned_at, message.pinned_by = None, None
        message.save(update_fields=["pinned_at", "pinned_by"])
        events.record_event(
            room,
            Event.Kind.MESSAGE_UNPINNED,
            {"message": message_snapshot(message), "by": events.user_snapshot(actor)},
            actor=actor,
        )
    return message
