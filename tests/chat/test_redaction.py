"""The migration that indexes events by message redacts what was stored before
redaction existed."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from chat.models import Event
from chat.services import messages

pytestmark = pytest.mark.django_db

migration = importlib.import_module("chat.migrations.0007_event_message")


def test_events_stored_before_redaction_are_indexed_and_redacted(world):
    kept = messages.send_message(world.member, world.public.pk, "kept words")
    edited = messages.send_message(world.member, world.public.pk, "first words")
    gone = messages.send_message(world.member, world.public.pk, "gone words")
    messages.edit_message(world.member, edited.pk, "second words")
    messages.delete_message(world.member, gone.pk)
    # As such events were stored before: no index, snapshots as sent.
    for event in Event.objects.exclude(message=None):
        snapshot = event.payload["message"]
        if snapshot["id"] in (edited.pk, gone.pk) and event.kind == Event.Kind.MESSAGE_ADDED:
            snapshot["text"] = {edited.pk: "first words", gone.pk: "gone words"}[snapshot["id"]]
            snapshot["deleted_at"] = snapshot["edited_at"] = None
        event.message = None
        event.save()

    migration.index_and_redact_existing_events(apps, None)

    by_message = {}
    for event in Event.objects.exclude(message=None).order_by("seq"):
        by_message.setdefault(event.message_id, []).append(event.payload["message"]["text"])
    mine = {pk: texts for pk, texts in by_message.items() if pk in (kept.pk, edited.pk, gone.pk)}
    assert mine == {kept.pk: ["kept words"], edited.pk: ["second words"] * 2, gone.pk: ["", ""]}
