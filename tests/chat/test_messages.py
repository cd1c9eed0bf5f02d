"""Message services: validation, idempotency, attachments, mentions, edits, soft deletion, read positions."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from chat import events
from chat.errors import BadUserInput, Forbidden, NotFound, RateLimited
from chat.models import Attachment, Membership, Message, Room
from chat.services import messages, rooms
from tests.chat_world import (
    World,
    db_state,
    events_after,
    fast_user,
    last_event_id,
    user_snap,
)

pytestmark = pytest.mark.django_db


def upload(user, name="photo.png", size=3) -> Attachment:
    attachment = Attachment(uploader=user, name=name, content_type="image/png", size=size, width=2, height=1)
    attachment.file.save(name, ContentFile(b"x" * size), save=False)
    attachment.thumbnail.save("thumb.png", ContentFile(b"t"), save=False)
    attachment.save()
    return attachment


def seq_of(room) -> int:
    return Room.objects.get(pk=room.pk).last_seq


class TestSend:
    def test_records_message_added_with_the_snapshot(self, world: World):
        mark = last_event_id()
        message = messages.send_message(
            world.member, world.public.pk, "  hi there  ", client_id="c-1", reply_to_id=world.owner_message.pk
        )
        assert (message.text, message.client_id, message.reply_to_id, message.sender) == (
            "hi there",
            "c-1",
            world.owner_message.pk,
            world.member,
        )
        assert events_after(mark) == [
            (
                world.public.pk,
                "MessageAdded",
                seq_of(world.public),
                {
                    "message": {
                        "id": message.pk,
                        "room_id": world.public.pk,
                        "sender": user_snap(world.member),
                        "text": "hi there",
                        "client_id": "c-1",
                        "reply_to_id": world.owner_message.pk,
                        "created_at": message.created_at.isoformat(),
                        "edited_at": None,
                        "deleted_at": None,
                        "attachments": [],
                    }
                },
            )
        ]

    @pytest.mark.parametrize("text", ["", "   ", "x" * 4001])
    def test_text_length(self, world: World, text):
        before = db_state()
        with pytest.raises(BadUserInput):
            messages.send_message(world.member, world.public.pk, text)
        assert db_state() == before

    def test_4000_characters_after_trimming_are_fine(self, world: World):
        assert len(messages.send_message(world.member, world.public.pk, " " + "x" * 4000 + " ").text) == 4000

    def test_same_client_id_returns_the_first_message(self, world: World):
        first = messages.send_message(world.member, world.public.pk, "once", client_id="k")
        before = db_state()
        again = messages.send_message(world.member, world.public.pk, "twice?", client_id="k")
        assert again.pk == first.pk and again.text == "once"
        assert db_state() == before
        # Another sender may use the same key.
        assert messages.send_message(world.owner, world.public.pk, "mine", client_id="k").pk != first.pk

    def test_client_id_reused_in_another_room(self, world: World):
        messages.send_message(world.member, world.public.pk, "once", client_id="k")
        before = db_state()
        with pytest.raises(BadUserInput):
            messages.send_message(world.member, world.private.pk, "elsewhere", client_id="k")
        assert db_state() == before

    def test_reply_must_be_in_the_same_room(self, world: World):
        before = db_state()
        with pytest.raises(BadUserInput):
            messages.send_message(world.member, world.public.pk, "re", reply_to_id=world.private_message.pk)
        with pytest.raises(BadUserInput):
            messages.send_message(world.member, world.public.pk, "re", reply_to_id="nope")
        assert db_state() == before

    def test_rate_limited(self, world: World, settings):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "send_message": (1, 10)}
        messages.send_message(world.other_member, world.public.pk, "one")
        before = db_state()
        with pytest.raises(RateLimited):
            messages.send_message(world.other_member, world.public.pk, "two")
        assert db_state() == before

    def test_mentions_notify_members_case_insensitively_but_not_the_sender(
        self, world: World, django_capture_on_commit_callbacks, published
    ):
        with django_capture_on_commit_callbacks(execute=True):
            message = messages.send_message(
                world.member, world.public.pk, "@OLGA and @adam. ping @mia @otto mail@max.example"
            )
        mentions = [(groups, m) for groups, m in published if m["type"] == events.NOTIFICATION_TYPE]
        assert sorted(groups[0] for groups, _ in mentions) == sorted(
            [f"user.{world.owner.pk}", f"user.{world.admin.pk}"]
        )
        _, notification = mentions[0]
        assert notification["kind"] == "MENTIONED"
        assert notification["message_id"] == message.pk
        assert notification["by"] == user_snap(world.member)
        assert notification["room"]["id"] == world.public.pk


class TestAttachments:
    def test_claimed_in_the_same_transaction(self, world: World):
        files = [upload(world.member, "a.png"), upload(world.member, "b.png")]
        mark = last_event_id()
        message = messages.send_message(world.member, world.public.pk, "", attachment_ids=[f.pk for f in files])
        assert message.text == ""
        assert list(message.attachments.order_by("pk").values_list("name", flat=True)) == ["a.png", "b.png"]
        [(_, _, _, payload)] = events_after(mark)
        assert [a["name"] for a in payload["message"]["attachments"]] == ["a.png", "b.png"]
        assert payload["message"]["attachments"][0] == {
            "id": files[0].pk,
            "name": "a.png",
            "content_type": "image/png",
            "size": 3,
            "width": 2,
            "height": 1,
            "has_thumbnail": True,
        }

    def test_someone_elses_or_attached_uploads_are_refused(self, world: World):
        theirs = upload(world.owner)
        mine = upload(world.member)
        messages.send_message(world.member, world.public.pk, "first", attachment_ids=[mine.pk])
        before = db_state()
        for ids in ([theirs.pk], [mine.pk], [999999]):
            with pytest.raises(BadUserInput):
                messages.send_message(world.member, world.public.pk, "x", attachment_ids=ids)
        assert db_state() == before

    def test_at_most_max_files(self, world: World, settings):
        settings.MAX_FILES_PER_MESSAGE = 1
        files = [upload(world.member), upload(world.member)]
        with pytest.raises(BadUserInput):
            messages.send_message(world.member, world.public.pk, "x", attachment_ids=[f.pk for f in files])
        assert Attachment.objects.filter(message__isnull=False).count() == 0


class TestEdit:
    def test_records_message_edited(self, world: World):
        mark = last_event_id()
        message = messages.edit_message(world.member, world.message.pk, " changed ")
        assert message.text == "changed" and message.edited_at is not None
        [(room_id, kind, seq, payload)] = events_after(mark)
        assert (room_id, kind, seq) == (world.public.pk, "MessageEdited", seq_of(world.public))
        assert payload["message"]["text"] == "changed"
        assert payload["message"]["edited_at"] == message.edited_at.isoformat()

    def test_only_own_and_not_deleted(self, world: World):
        messages.delete_message(world.owner, world.owner_message.pk)
        before = db_state()
        with pytest.raises(Forbidden):
            messages.edit_message(world.owner, world.message.pk, "mine now")
        with pytest.raises(BadUserInput):
            messages.edit_message(world.owner, world.owner_message.pk, "back")
        with pytest.raises(BadUserInput):
            messages.edit_message(world.member, world.message.pk, "  ")
        assert db_state() == before


class TestDelete:
    def test_soft_delete_removes_text_and_files_after_commit(self, world: World, django_capture_on_commit_callbacks):
        attachment = upload(world.member)
        names = [attachment.file.name, attachment.thumbnail.name]
        message = messages.send_message(world.member, world.public.pk, "bye", attachment_ids=[attachment.pk])
        mark = last_event_id()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            deleted = messages.delete_message(world.admin, message.pk)
            assert all(default_storage.exists(n) for n in names)  # not before commit
        for callback in callbacks:
            callback()
        assert not any(default_storage.exists(n) for n in names)
        assert (deleted.text, deleted.is_deleted) == ("", True)
        assert Attachment.objects.filter(pk=attachment.pk).count() == 0
        [(room_id, kind, seq, payload)] = events_after(mark)
        assert (room_id, kind, seq) == (world.public.pk, "MessageDeleted", seq_of(world.public))
        assert payload["message"]["text"] == "" and payload["message"]["attachments"] == []
        assert payload["message"]["deleted_at"] == deleted.deleted_at.isoformat()

    def test_deleting_twice_records_one_event(self, world: World):
        messages.delete_message(world.member, world.message.pk)
        before = db_state()
        messages.delete_message(world.member, world.message.pk)
        assert db_state() == before

    def test_members_cannot_delete_others_messages(self, world: World):
        before = db_state()
        with pytest.raises(Forbidden):
            messages.delete_message(world.other_member, world.message.pk)
        assert db_state() == before


class TestMarkRead:
    def test_moves_forward_and_records_a_receipt(self, world: World):
        mark = last_event_id()
        messages.mark_read(world.owner, world.public.pk, world.message.pk)
        membership = Membership.objects.get(room=world.public, user=world.owner)
        assert membership.last_read_message_id == world.message.pk
        assert events_after(mark) == [
            (
                world.public.pk,
                "ReadReceipt",
                seq_of(world.public),
                {"user": user_snap(world.owner), "message_id": world.message.pk},
            )
        ]
        messages.mark_read(world.owner, world.public.pk, world.owner_message.pk)
        before = db_state()
        messages.mark_read(world.owner, world.public.pk, world.message.pk)  # backwards: nothing
        assert db_state() == before

    def test_message_of_another_room(self, world: World):
        before = db_state()
        with pytest.raises(NotFound):
            messages.mark_read(world.member, world.public.pk, world.private_message.pk)
        assert db_state() == before

    def test_removed_members_cannot_send(self, world: World):
        rooms.remove_member(world.owner, world.public.pk, world.other_member.pk)
        with pytest.raises(Forbidden):
            messages.send_message(world.other_member, world.public.pk, "still here?")
        assert not Message.objects.filter(sender=world.other_member).exists()


class TestAdminAdd:
    def test_adding_a_message_in_the_admin_sends_it(self, world: World, client):
        admin_user = fast_user("root", is_staff=True, is_superuser=True)
        client.force_login(admin_user)
        mark = last_event_id()
        response = client.post(
            "/admin/chat/message/add/",
            {"room": world.public.pk, "sender": world.owner.pk, "text": " from the admin ", "client_id": ""},
        )
        assert response.status_code == 302, response.content
        message = Message.objects.get(text="from the admin")
        assert (message.sender, message.room_id) == (world.owner, world.public.pk)
        assert [(kind, payload["message"]["id"]) for _, kind, _, payload in events_after(mark)] == [
            ("MessageAdded", message.pk)
        ]

    def test_the_services_rules_apply(self, world: World, client):
        admin_user = fast_user("root", is_staff=True, is_superuser=True)
        client.force_login(admin_user)
        before = db_state()
        response = client.post(
            "/admin/chat/message/add/", {"room": world.private.pk, "sender": world.outsider.pk, "text": "sneaky"}
        )
        assert response.status_code == 200
        assert b"Room not found." in response.content
        assert db_state() == before
