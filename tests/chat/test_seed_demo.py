"""``manage.py seed_demo``: a living chat for newcomers, made by the real services, idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from chat.management.commands.seed_demo import DEMO_PASSWORD
from chat.models import Event, Invite, Membership, Message, MessageEdit, Mute, Notification, Reaction, Room, User


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def counts() -> tuple[int, ...]:
    return (
        User.objects.count(),
        Room.objects.count(),
        Membership.objects.count(),
        Message.objects.count(),
        Event.objects.count(),
        Reaction.objects.count(),
        MessageEdit.objects.count(),
        Notification.objects.count(),
    )


@pytest.mark.django_db(transaction=True)
def test_seed_demo_creates_users_rooms_and_history_once():
    output = seed()
    assert "4 users, 3 rooms, 72 messages created" in output
    assert f"password '{DEMO_PASSWORD}'" in output

    for username in ("alice", "bob", "carol"):
        assert User.objects.get(username=username).check_password(DEMO_PASSWORD)
    assert sorted(Room.objects.filter(kind="group").values_list("name", flat=True)) == ["design", "general", "random"]
    assert Room.objects.filter(kind="direct").count() == 1
    general = Room.objects.get(name="general")
    assert sorted(general.members.values_list("username", flat=True)) == ["alice", "bob", "carol", "erin"]
    assert Message.objects.filter(room=general).count() == 63
    assert Room.objects.get(name="design").is_private is True
    assert sorted(Room.objects.get(name="design").members.values_list("username", flat=True)) == ["alice", "carol"]
    # The services wrote the event log: every message has its MessageAdded event.
    assert Event.objects.filter(kind=Event.Kind.MESSAGE_ADDED).count() == 72
    assert Event.objects.filter(kind=Event.Kind.MEMBER_JOINED).exists()
    # Read positions are set, a few messages short of the end for some members.
    assert Membership.objects.filter(last_read_message__isnull=False).count() == Membership.objects.count()
    # alice finds an unread mention in her inbox.
    mention = Notification.objects.get(user__username="alice", kind="MENTIONED", read_at__isnull=True)
    assert (mention.by.username, mention.room.name) == ("bob", "random")

    # Some reactions, a thread, a pin and an edited message for the web chat to show.
    assert Reaction.objects.count() == 5
    lunch = Message.objects.filter(room=general, text="Who is up for lunch at noon?").order_by("-pk").first()
    assert lunch.reply_count == 3
    assert list(general.messages.filter(pinned_at__isnull=False).values_list("text", flat=True)) == [
        "And if you lose the connection, pass the last cursor as `after` and nothing is lost."
    ]
    assert MessageEdit.objects.get().text == "I will be here all week."

    # Moderation: erin is muted in #general (no end); an invite link opens #design.
    mute = Mute.objects.get()
    assert (mute.room, mute.user.username, mute.until) == (general, "erin", None)
    invite = Invite.objects.get()
    assert (invite.room.name, invite.max_uses, invite.uses) == ("design", 5, 0)
    assert f"#invite={invite.code}" in output

    before = counts()
    again = seed()
    assert "0 users, 0 rooms, 0 messages created" in again
    assert counts() == before
    assert (Mute.objects.count(), Invite.objects.count()) == (1, 1) and f"#invite={invite.code}" in again
