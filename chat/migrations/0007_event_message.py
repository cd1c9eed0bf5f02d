import django.db.models.deletion
from django.db import migrations, models


def index_and_redact_existing_events(apps, schema_editor):
    """Index stored events by the message whose snapshot they carry, then bring
    those snapshots in line with the message as it is now: the tombstone for a
    deleted message, the current text for an edited one. Events written before
    this migration may still hold deleted or replaced text."""
    Event = apps.get_model("chat", "Event")
    Message = apps.get_model("chat", "Message")
    for event in Event.objects.filter(message__isnull=True).only("id", "payload").iterator():
        snapshot = (event.payload or {}).get("message")
        if not isinstance(snapshot, dict) or not isinstance(snapshot.get("id"), int):
            continue
        message = Message.objects.filter(pk=snapshot["id"]).only("text", "edited_at", "deleted_at").first()
        if message is None:
            continue
        event.message_id = message.pk
        if message.deleted_at is not None:
            snapshot.update(text="", attachments=[], deleted_at=message.deleted_at.isoformat())
        else:
            snapshot["text"] = message.text
            snapshot["edited_at"] = message.edited_at.isoformat() if message.edited_at else None
        event.save(update_fields=["message", "payload"])


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0006_avatars"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="message",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="chat.message",
            ),
        ),
        migrations.RunPython(index_and_redact_existing_events, migrations.RunPython.noop),
    ]
