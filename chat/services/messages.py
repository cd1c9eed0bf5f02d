"""Messages: sending (idempotent per client id), editing, deleting, read positions."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import access, events, ratelimit, redaction, search
from chat.errors import BadUserInput, Forbidden, NotFound
from chat.models import Attachment, Event, Membership, Message, MessageEdit, Reaction, Room
from chat.services import moderation, notifications
from chat.services.rooms import parse_id

CLIENT_ID_MAX = Message._meta.get_field("client_id").max_length


def _clean_text(text, *, allow_empty: bool) -> str:
    text = (text or "").strip()
    limit = settings.MESSAGE_MAX_LENGTH
    if not text and not allow_empty:
        raise BadUserInput("A message needs text or attachments.", fields={"text": ["This field is required."]})
    if len(text) > limit:
        raise BadUserInput(
            f"Messages are at most {limit} characters.", fields={"text": [f"At most {limit} characters."]}
        )
    return text


def _clean_client_id(client_id) -> str | None:
    if client_id is None:
        return None
    client_id = str(client_id).strip()
    if not client_id or len(client_id) > CLIENT_ID_MAX:
        raise BadUserInput(
            f"clientId must be 1 to {CLIENT_ID_MAX} characters.", fields={"clientId": ["Invalid client id."]}
        )
    return client_id


def _attachment_ids(attachment_ids) -> list[int]:
    ids: list[int] = []
    for raw in attachment_ids or ():
        try:
            pk = parse_id(raw, "Attachment")
        except NotFound:
            raise BadUserInput(
                "Unknown attachment.", fields={"attachmentIds": [f"Unknown attachment {raw}."]}
            ) from None
        if pk not in ids:
            ids.append(pk)
    if len(ids) > settings.MAX_FILES_PER_MESSAGE:
        raise BadUserInput(
            f"At most {settings.MAX_FILES_PER_MESSAGE} files per message.",
            fields={"attachmentIds": [f"At most {settings.MAX_FILES_PER_MESSAGE} files."]},
        )
    return ids


def _previous_send(actor, client_id: str | None, room: Room) -> Message | None:
    """The message ``actor`` already sent with ``client_id``: a retry returns it."""
    if client_id is None:
        return None
    existing = Message.objects.filter(sender=actor, client_id=client_id).select_related("sender").first()
    if existing is not None and existing.room_id != room.pk:
        raise BadUserInput("This clientId was used for another room.", fields={"clientId": ["Already used."]})
    return existing


def _thread_root(room: Room, reply_to_id, thread_id) -> int | None:
    """The id of the thread root a new message replies to, from ``threadId`` or ``replyToId``
    (both may be given if they name the same thread); ``BadUserInput`` for a message of
    another room, or one that does not exist."""
    roots = set()
    for name, raw in (("threadId", thread_id), ("replyToId", reply_to_id)):
        if raw is None:
            continue
        try:
            pk = parse_id(raw, "Message")
        except NotFound:
            pk = None
        target = Message.objects.filter(pk=pk, room=room).values("pk", "reply_to_id").first() if pk else None
        if target is None:
            raise BadUserInput(
                "You can only reply to a message of the same room.", fields={name: ["Not in this room."]}
            )
        roots.add(target["reply_to_id"] or target["pk"])
    if len(roots) > 1:
        raise BadUserInput(
            "threadId and replyToId name different threads.", fields={"threadId": ["Not the thread of replyToId."]}
        )
    return roots.pop() if roots else None


def _count_replies(root_id: int) -> None:
    """Bring a thread root's reply count and latest reply time up to date (under the room lock)."""
    replies = Message.objects.filter(reply_to_id=root_id, deleted_at__isnull=True)
    latest = replies.order_by("-created_at", "-pk").values_list("created_at", flat=True).first()
    Message.objects.filter(pk=root_id).update(reply_count=replies.count(), last_reply_at=latest)


def send_message(actor, room_id, text, client_id=None, reply_to_id=None, attachment_ids=(), thread_id=None) -> Message:
    """Send a message to a room the actor belongs to.

    ``thread_id`` (or ``reply_to_id``, its older name) makes it a reply in the
    thread of that message: a reply to a reply joins the root's thread.

    Sending again with the same ``client_id`` returns the first message, also
    when the retries race: the check runs again under the room lock, and the
    unique (sender, client id) constraint is the last word.
    """
    actor = access.require_user(actor)
    room, _ = access.access_room_as_member(actor, parse_id(room_id, "Room"))
    client_id = _clean_client_id(client_id)
    previous = _previous_send(actor, client_id, room)
    if previous is not None:
        return previous
    access.require_may_write(actor, room)
    ids = _attachment_ids(attachment_ids)
    text = _clean_text(text, allow_empty=bool(ids))
    thread_root = _thread_root(room, reply_to_id, thread_id)
    ratelimit.throttle("send_message", actor)

    try:
        with transaction.atomic():
            room = events.lock_room(room.pk)
            membership = access.membership_of(actor, room.pk)
            if membership is None:
                raise NotFound("Room not found.")  # removed meanwhile
            previous = _previous_send(actor, client_id, room)
            if previous is not None:
                return previous
            access.require_may_write(actor, room)  # again: muted or blocked meanwhile
            moderation.check_slow_mode(room, membership)
            attachments = (
                list(
                    Attachment.objects.select_for_update()
                    .filter(pk__in=ids, uploader=actor, message__isnull=True)
                    .order_by("pk")
                )
                if ids
                else []  # most messages have none: Django would build this query only to skip running it
            )
            if len(attachments) != len(ids):
                raise BadUserInput(
                    "Attachments must be your own uploads, not yet attached to a message.",
                    fields={"attachmentIds": ["Unknown or already attached."]},
                )
            message = Message.objects.create(
                room=room, sender=actor, text=text, client_id=client_id, reply_to_id=thread_root
            )
            search.index_message(message)
            if thread_root is not None:
                _count_replies(thread_root)
            if attachments:
                Attachment.objects.filter(pk__in=ids).update(message=message)
                for attachment in attachments:
                    attachment.message = message
            snapshot = events.message_snapshot(message, attachments)
            events.record_event(room, Event.Kind.MESSAGE_ADDED, {"message": snapshot}, actor=actor)
            notifications.notify_message(room, message, actor)
    except IntegrityError:
        # A concurrent retry with the same client id won the insert.
        previous = _previous_send(actor, client_id, room) if client_id else None
        if previous is None:
            raise
        return previous
    return message


def edit_message(actor, message_id, text) -> Message:
    """Change the text of one's own message; sets ``edited_at``."""
    actor = access.require_user(actor)
    message = access.access_message(actor, parse_id(message_id, "Message"))
    if message.sender_id != actor.pk:
        raise Forbidden("You can only edit your own messages.")
    access.require_may_write(actor, message.room)
    if message.is_deleted:
        raise BadUserInput("A deleted message cannot be edited.")
    ratelimit.throttle("edit_message", actor)
    with transaction.atomic():
        room = events.lock_room(message.room_id)
        # of=self: Postgres refuses FOR UPDATE on the nullable side of the outer join to the sender.
        message = Message.objects.select_for_update(of=("self",)).select_related("sender").get(pk=message.pk)
        attachments = list(message.attachments.order_by("pk"))
        text = _clean_text(text, allow_empty=bool(attachments))
        if text == message.text:
            return message
        edited_at = timezone.now()
        # The edit history keeps each replaced text, for as long as the message is not deleted.
        MessageEdit.objects.create(message=message, text=message.text, edited_at=edited_at)
        message.text = text
        message.edited_at = edited_at
        message.save(update_fields=["text", "edited_at"])
        search.index_message(message)
        redaction.supersede_edited_text(message)
        events.record_event(
            room, Event.Kind.MESSAGE_EDITED, {"message": events.message_snapshot(message, attachments)}, actor=actor
        )
    return message


def delete_message(actor, message_id) -> Message:
    """Soft-delete a message: its text and files go, a tombstone stays in history.

    Every stored copy of its content goes in the same transaction (see
    chat/redaction.py): replays of its earlier events show the tombstone.
    Allowed for the sender, the room's owner and admins, and staff.
    """
    actor = access.require_user(actor)
    message = access.access_message(actor, parse_id(message_id, "Message"), moderate=True)
    if message.sender_id != actor.pk:
        access.require_role(
            access.membership_of(actor, message.room_id), Membership.Role.OWNER, Membership.Role.ADMIN, user=actor
        )
    ratelimit.throttle("delete_message", actor)
    with transaction.atomic():
        room = events.lock_room(message.room_id)
        # of=self: Postgres refuses FOR UPDATE on the nullable side of the outer join to the sender.
        message = Message.objects.select_for_update(of=("self",)).select_related("sender").get(pk=message.pk)
        if message.is_deleted:
            return message
        Reaction.objects.filter(message=message).delete()
        message.text = ""
        message.deleted_at = timezone.now()
        message.pinned_at, message.pinned_by = None, None  # a tombstone leaves the pinned list
        message.save(update_fields=["text", "deleted_at", "pinned_at", "pinned_by"])
        if message.reply_to_id is not None:
            _count_replies(message.reply_to_id)
        redaction.redact_deleted_message(message)
        events.record_event(
            room, Event.Kind.MESSAGE_DELETED, {"message": events.message_snapshot(message, [])}, actor=actor
        )
    return message


def mark_read(actor, room_id, message_id) -> Room:
    """Move the actor's read position in a room forward to ``message_id``.

    Moving it backwards (an older message) changes nothing and records nothing.
    """
    actor = access.require_user(actor)
    room, _ = access.access_room_as_member(actor, parse_id(room_id, "Room"))
    try:
        message_pk = parse_id(message_id, "Message")
    except NotFound:
        message_pk = None
    message = Message.objects.filter(pk=message_pk, room=room).first() if message_pk else None
    if message is None:
        raise NotFound("Message not found.")
    ratelimit.throttle("mark_read", actor)
    with transaction.atomic():
        room = events.lock_room(room.pk)
        membership = (
            Membership.objects.select_for_update(of=("self",))
            .filter(room=room, user=actor)
            .select_related("last_read_message")
        ).first()
        if membership is None:
            raise NotFound("Room not found.")
        current = membership.last_read_message
        if current is not None and (current.created_at, current.pk) >= (message.created_at, message.pk):
            return room
        membership.last_read_message = message
        membership.last_read_at = timezone.now()
        membership.save(update_fields=["last_read_message", "last_read_at"])
        notifications.mark_room_notifications_read(actor, room, message)
        events.record_event(
            room,
            Event.Kind.READ_RECEIPT,
            {"user": events.user_snapshot(actor), "message_id": message.pk},
            actor=actor,
        )
    return room
