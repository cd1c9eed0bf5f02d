"""Reactions: members put emoji on messages, each emoji once per user.

Adding a reaction that is there, or removing one that is not, changes nothing
and records no event, so clients may retry freely.
"""

from __future__ import annotations

import emoji as emoji_data
from django.db import transaction

from chat import access, events, ratelimit
from chat.errors import BadUserInput, NotFound
from chat.models import Event, Membership, Message, Reaction, Room
from chat.services.rooms import parse_id

# Distinct emoji on one message: enough for any conversation, few enough that a
# message's reaction bar (and its event payloads) stay small.
MAX_EMOJI_PER_MESSAGE = 20
EMOJI_MAX_LENGTH = Reaction._meta.get_field("emoji").max_length


def clean_emoji(value) -> str:
    """Exactly one Unicode emoji (a sequence such as 👍🏽 or 👨‍👩‍👧 counts as one), in its
    fully-qualified form so that ❤ and ❤️ are the same reaction; ``BadUserInput`` otherwise.

    The Unicode emoji list changes every year: the ``emoji`` package tracks it,
    a table written here would not.
    """
    value = value.strip() if isinstance(value, str) else ""
    if not value or len(value) > EMOJI_MAX_LENGTH or not emoji_data.is_emoji(value):
        raise BadUserInput("emoji must be exactly one Unicode emoji.", fields={"emoji": ["Not a single emoji."]})
    qualified = emoji_data.emojize(emoji_data.demojize(value))
    return qualified if emoji_data.is_emoji(qualified) else value


def message_snapshot(message: Message) -> dict:
    """The snapshot a reaction or pin event carries (cleared with the message by redaction)."""
    return events.message_snapshot(message, message.attachments.order_by("pk"))


def lock_message(actor, message: Message) -> tuple[Room, Message]:
    """Lock the message's room, then re-read the message: the actor must still be a
    member and the message must not have been deleted meanwhile.

    Precondition: inside ``transaction.atomic()``.
    """
    room = events.lock_room(message.room_id)
    if not Membership.objects.filter(room=room, user=actor).exists():
        raise NotFound("Message not found.")
    # of=self: Postgres refuses FOR UPDATE on the nullable side of the outer join to the sender.
    message = Message.objects.select_for_update(of=("self",)).select_related("sender").get(pk=message.pk)
    refuse_deleted(message)
    return room, message


def refuse_deleted(message: Message) -> None:
    if message.is_deleted:
        raise BadUserInput("This message was deleted.", fields={"messageId": ["Deleted."]})


def _prepare(actor, message_id, emoji) -> tuple:
    actor = access.require_user(actor)
    message, _ = access.access_message_as_member(actor, parse_id(message_id, "Message"))
    emoji = clean_emoji(emoji)
    refuse_deleted(message)
    ratelimit.throttle("reaction", actor)
    return actor, message, emoji


def add_reaction(actor, message_id, emoji) -> Message:
    """React to a message of a room the actor belongs to (not a deleted one).

    At most ``MAX_EMOJI_PER_MESSAGE`` distinct emoji per message: a new emoji
    beyond them is ``BadUserInput``; joining an emoji already there always works.
    """
    actor, message, emoji = _prepare(actor, message_id, emoji)
    with transaction.atomic():
        room, message = lock_message(actor, message)
        access.require_may_write(actor, room)  # muted, or blocked in a direct chat
        if Reaction.objects.filter(message=message, user=actor, emoji=emoji).exists():
            return message
        present = set(Reaction.objects.filter(message=message).values_list("emoji", flat=True).distinct())
        if emoji not in present and len(present) >= MAX_EMOJI_PER_MESSAGE:
            raise BadUserInput(
                f"A message has at most {MAX_EMOJI_PER_MESSAGE} different reactions.",
                fields={"emoji": [f"At most {MAX_EMOJI_PER_MESSAGE} different emoji per message."]},
            )
        Reaction.objects.create(message=message, user=actor, emoji=emoji)
        events.record_event(
            room,
            Event.Kind.REACTION_ADDED,
            {"message": message_snapshot(message), "emoji": emoji, "user": events.user_snapshot(actor)},
            actor=actor,
        )
    return message


def remove_reaction(actor, message_id, emoji) -> Message:
    """Take back one's own reaction; nothing happens if it is not there."""
    actor, message, emoji = _prepare(actor, message_id, emoji)
    with transaction.atomic():
        room, message = lock_message(actor, message)
        deleted, _ = Reaction.objects.filter(message=message, user=actor, emoji=emoji).delete()
        if not deleted:
            return message
        events.record_event(
            room,
            Event.Kind.REACTION_REMOVED,
            {"message": message_snapshot(message), "emoji": emoji, "user": events.user_snapshot(actor)},
            actor=actor,
        )
    return message
