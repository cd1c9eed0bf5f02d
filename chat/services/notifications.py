"""Notifications: stored per user (the inbox, waiting while they are offline) and
published live on ``user.<id>`` after commit.

Who is notified of a message: members named ``@username``; everyone with
``@room``; members online now with ``@here`` (in rooms over
``MENTION_EVERYONE_MAX_MEMBERS`` only owners' and admins' ``@room``/``@here``
count); and members whose level for the room is ``ALL`` of every message.
Never the author, never a member whose level is ``NONE``, never someone who may
not see the author.
"""

from __future__ import annotations

import re

from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from chat import access, events
from chat.errors import BadUserInput, NotFound
from chat.models import Membership, Message, Notification, NotificationLevel, Room, User
from chat.services.presence import online_user_ids

Kind = Notification.Kind

# `@name` not preceded by a word character (so e-mail addresses do not mention).
MENTION = re.compile(r"(?<![\w@])@([\w.+-]+)")
MENTION_ROOM = "room"  # every member
MENTION_HERE = "here"  # the members online now
MARK_READ_MAX_IDS = 100


def mention_names(text: str) -> set[str]:
    """The lower-cased names written as ``@name`` in ``text`` (trailing punctuation dropped)."""
    names = {m.rstrip(".-+").lower() for m in MENTION.findall(text or "")}
    names.discard("")
    return names


def notification_message(notification: Notification) -> dict:
    """What the live ``notifications`` subscription receives: the stored row's id
    and snapshots, so a client can render it and mark it read."""
    return {
        "type": events.NOTIFICATION_TYPE,
        "id": notification.pk,
        "kind": str(notification.kind),
        "room": events.room_snapshot(notification.room),
        "message_id": notification.message_id,
        "by": events.user_snapshot(notification.by),
        "created_at": notification.created_at.isoformat(),
    }


def notify(user_ids, kind: str, room: Room, by: User, message: Message | None = None) -> list[Notification]:
    """Store a notification of ``kind`` for each of ``user_ids`` and publish it after commit.

    Skipped: ``by`` themself, users who blocked ``by``, users who are not members of
    ``room`` or set it to ``NONE``, and users who may not see ``by``.
    Precondition: inside ``transaction.atomic()`` (the rows commit with the change).
    """
    wanted = {int(uid) for uid in user_ids} - {by.pk}
    # A user who blocked ``by`` hears nothing from them: no mention, no message notification.
    wanted -= access.blockers_of(by.pk, wanted) if wanted else set()
    if not wanted:
        return []
    recipients = (
        Membership.objects.filter(room=room, user_id__in=wanted, user__in=access.users_who_see(by))
        .exclude(notification_level=NotificationLevel.NONE)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )
    now = timezone.now()
    rows = Notification.objects.bulk_create(
        [Notification(user_id=uid, kind=kind, room=room, message=message, by=by, created_at=now) for uid in recipients]
    )
    for row in rows:
        events.publish_on_commit([events.user_group(row.user_id)], notification_message(row))
    return rows


def _mentioned_user_ids(room: Room, sender: User, names: set[str]) -> set[int]:
    if not names:
        return set()
    members = Membership.objects.filter(room=room).exclude(user_id=sender.pk)
    mentioned: set[int] = set()
    wide = names & {MENTION_ROOM, MENTION_HERE}
    if wide:
        sender_membership = access.membership_of(sender, room.pk)
        if access.may_mention_everyone(sender_membership, Membership.objects.filter(room=room).count()):
            everyone = list(members.values_list("user_id", flat=True))
            mentioned |= set(everyone) if MENTION_ROOM in wide else set(online_user_ids(everyone))
    named = names - wide
    if named:
        # Usernames are unique case-insensitively: compare lower-cased (one query for any number of names).
        by_name = members.annotate(username_lower=Lower("user__username")).filter(username_lower__in=named)
        mentioned |= set(by_name.values_list("user_id", flat=True))
    return mentioned


def notify_message(room: Room, message: Message, sender: User) -> list[Notification]:
    """The notifications a new message stores: mentions, then every message for ``ALL`` members.
    Precondition: inside the message's transaction."""
    mentioned = _mentioned_user_ids(room, sender, mention_names(message.text))
    # The sender among them is dropped by notify().
    everything = set(
        Membership.objects.filter(room=room, notification_level=NotificationLevel.ALL).values_list("user_id", flat=True)
    )
    return [
        *notify(mentioned, Kind.MENTIONED, room, sender, message),
        *notify(everything - mentioned, Kind.NEW_MESSAGE, room, sender, message),
    ]


def redact_message_notifications(message: Message) -> int:
    """Delete the notifications of a deleted message (its text must not outlive it).
    Precondition: inside ``delete_message``'s transaction."""
    return Notification.objects.filter(message=message).delete()[0]


def mark_room_notifications_read(user: User, room: Room, message: Message) -> int:
    """Reading a room up to ``message`` reads the notifications of the messages up to it."""
    return (
        Notification.objects.filter(user=user, room=room, read_at__isnull=True, message__isnull=False)
        .filter(message__created_at__lte=message.created_at)
        .exclude(message__created_at=message.created_at, message_id__gt=message.pk)
        .update(read_at=timezone.now())
    )


def mark_notifications_read(actor, ids=None, *, all_unread: bool = False) -> int:
    """Mark some (``ids``) or all (``all_unread``) of the actor's unread notifications read;
    returns how many changed. An id that is not one of the actor's visible
    notifications is ``NotFound`` and nothing changes."""
    actor = access.require_user(actor)
    if not all_unread and not ids:
        raise BadUserInput("Pass `ids` or `all: true`.", fields={"ids": ["Give ids, or set all."]})
    mine = access.notifications_visible_to(actor)
    if all_unread:
        return mine.filter(read_at__isnull=True).update(read_at=timezone.now())
    pks = sorted({int(pk) for pk in ids})
    if len(pks) > MARK_READ_MAX_IDS:
        raise BadUserInput(
            f"At most {MARK_READ_MAX_IDS} ids at once.", fields={"ids": [f"At most {MARK_READ_MAX_IDS}."]}
        )
    with transaction.atomic():
        found = mine.filter(pk__in=pks)
        if found.count() != len(pks):
            raise NotFound("Notification not found.")
        return found.filter(read_at__isnull=True).update(read_at=timezone.now())


def set_room_notification_level(actor, room_id, level: str) -> Room:
    """Choose what the actor is notified of in a room they belong to: ``all`` messages,
    ``mentions`` (the default) or ``none`` (nothing is stored for that room)."""
    actor = access.require_user(actor)
    if level not in NotificationLevel.values:
        raise BadUserInput("Unknown notification level.", fields={"level": ["Unknown level."]})
    room, membership = access.access_room_as_member(actor, room_id)
    if membership.notification_level != level:
        Membership.objects.filter(pk=membership.pk).update(notification_level=level)
    return room
