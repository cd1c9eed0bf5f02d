"""Redaction: a deleted message leaves no readable trace, an edited one no stale copy.

The rule ("deleted means gone"): every place that stores a copy of a message's
content (its text, its files and their names, quotes of it) is cleared by
``redact_deleted_message``, which ``delete_message`` calls inside its
transaction, under the room lock. Event payloads are snapshots kept for resume,
so they are stores like any other: a replay after deletion shows the tombstone,
never the text.

Adding a store that keeps message content (edit history, notifications that
quote a message, a search index, report snapshots, a new content-bearing event)
means adding its clearing step to ``redact_deleted_message`` in the same change,
with a test that deletes a message and finds nothing left in that store. An
event whose payload carries a message snapshot under ``"message"`` is indexed by
that message (``Event.message``, set by ``events.record_event``) and redacted
here without further work.

Edits follow a narrower rule: text replaced by an edit is not replayed from the
payloads of the message's earlier events (``supersede_edited_text``); those
payloads show the current text. Edit history, where it exists, is the one place
where earlier versions stay visible, to those who may see the message, until
the message is deleted.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction

from chat import files, search
from chat.models import Attachment, Event, Message, MessageEdit
from chat.services import moderation, notifications


def redact_deleted_message(message: Message) -> None:
    """Clear every stored copy of ``message``'s content.

    Precondition: inside ``transaction.atomic()``, after ``message`` has been
    marked deleted and saved, with its room locked (``events.lock_room``). Files
    leave storage once the transaction commits, so a rollback loses none.
    """
    _delete_attachments(message)
    _delete_edit_history(message)
    _redact_event_payloads(message)
    notifications.redact_message_notifications(message)
    search.unindex_message(message)
    moderation.redact_reports(message)


def supersede_edited_text(message: Message) -> None:
    """Bring the snapshots of ``message`` in its earlier events up to its current
    text, so that replaying them does not bring back the replaced text.

    Precondition: inside the edit's transaction, after the new text is saved,
    before the edit's own event is recorded.
    """
    edited_at = message.edited_at.isoformat() if message.edited_at else None
    for event in _events_of(message):
        snapshot = event.payload.get("message")
        if not isinstance(snapshot, dict):
            continue
        if snapshot.get("text") == message.text and snapshot.get("edited_at") == edited_at:
            continue
        snapshot["text"] = message.text
        snapshot["edited_at"] = edited_at
        event.save(update_fields=["payload"])


def revision(payload: dict | None) -> tuple:
    """What tells two versions of one stored event apart. Editing or deleting a
    message rewrites the snapshots in its earlier events and always changes these
    two timestamps: anything that caches by event (rendered results, model
    instances) includes this in its key, so it never serves replaced or deleted text.
    """
    snapshot = (payload or {}).get("message")
    if not isinstance(snapshot, dict):
        return ()
    return (snapshot.get("edited_at"), snapshot.get("deleted_at"))


def _events_of(message: Message):
    return Event.objects.filter(message_id=message.pk, room_id=message.room_id).only("id", "payload").order_by("id")


def _redact_event_payloads(message: Message) -> None:
    deleted_at = message.deleted_at.isoformat() if message.deleted_at else None
    for event in _events_of(message):
        snapshot = event.payload.get("message")
        if not isinstance(snapshot, dict):
            continue
        snapshot.update(text="", attachments=[], deleted_at=deleted_at)
        event.save(update_fields=["payload"])


def _delete_edit_history(message: Message) -> None:
    """Earlier texts go with the current one."""
    MessageEdit.objects.filter(message=message).delete()


def _delete_attachments(message: Message) -> None:
    names = [
        name
        for attachment in Attachment.objects.filter(message=message)
        for name in (attachment.file.name, attachment.thumbnail.name)
        if name
    ]
    Attachment.objects.filter(message=message).delete()
    transaction.on_commit(partial(files.delete_stored, names))
