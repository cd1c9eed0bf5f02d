"""chat/services/attachments.py: storing, refusing, sending, downloading and pruning uploads."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core import signing
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from chat.errors import BadUserInput, NotFound, PayloadTooLarge, RateLimited, Unauthenticated, UnsupportedMediaType
from chat.models import Attachment, Event, Message
from chat.services import attachments, messages, rooms
from tests.upload_samples import ELF_HEADER, bomb_png, corrupt_png, image_bytes, upload


def stored_files() -> list[str]:
    """Every file under MEDIA_ROOT, relative to it."""
    root = Path(django_settings.MEDIA_ROOT)
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def png(name="cat.png", w=800, h=600):
    return upload(name, image_bytes(w, h, "PNG"), "image/png")


class TestStore:
    def test_an_image_is_stored_with_its_thumbnail(self, alice):
        attachment = attachments.store_upload(alice, png("../holiday.png"))
        attachment.refresh_from_db()
        assert (attachment.name, attachment.content_type, attachment.width, attachment.height) == (
            "holiday.png",
            "image/png",
            800,
            600,
        )
        assert attachment.uploader == alice and attachment.message is None
        assert attachment.size == len(image_bytes(800, 600, "PNG"))
        assert stored_files() == sorted([attachment.file.name, attachment.thumbnail.name])
        assert attachment.file.name.startswith("attachments/") and attachment.file.name.endswith("/file.png")
        with attachment.file.open("rb") as f:
            assert f.read() == image_bytes(800, 600, "PNG")
        with attachment.thumbnail.open("rb") as f, Image.open(f) as thumb:
            assert (thumb.format, thumb.size) == ("JPEG", (320, 240))

    def test_the_client_content_type_and_name_are_not_trusted(self, alice):
        attachment = attachments.store_upload(alice, upload("report.exe", b"%PDF-1.4\n...", "application/x-evil"))
        assert (attachment.name, attachment.content_type, attachment.thumbnail.name) == (
            "report.pdf",
            "application/pdf",
            "",
        )

    @pytest.mark.parametrize(
        ("make_file", "error", "status"),
        [
            (lambda: upload("big.txt", b"a" * 2001, "text/plain"), PayloadTooLarge, 413),
            (lambda: upload("cat.png", ELF_HEADER, "image/png"), UnsupportedMediaType, 415),
            (lambda: upload("broken.png", corrupt_png(), "image/png"), BadUserInput, 400),
            (lambda: upload("bomb.png", bomb_png(), "image/png"), PayloadTooLarge, 413),
            (lambda: upload("empty.txt", b"", "text/plain"), BadUserInput, 400),
        ],
        ids=["oversized", "disguised", "corrupt", "bomb", "empty"],
    )
    def test_refused_uploads_store_nothing(self, alice, settings, make_file, error, status):
        settings.MAX_UPLOAD_BYTES = 2000 if error is PayloadTooLarge and status == 413 else settings.MAX_UPLOAD_BYTES
        with pytest.raises(error) as refused:
            attachments.store_upload(alice, make_file())
        assert refused.value.http_status == status
        assert Attachment.objects.count() == 0
        assert stored_files() == []

    @pytest.mark.parametrize("not_a_file", [None, "a string", 42, {"name": "x.png"}])
    def test_something_that_is_not_a_file_is_bad_input(self, alice, not_a_file):
        with pytest.raises(BadUserInput):
            attachments.store_upload(alice, not_a_file)
        assert Attachment.objects.count() == 0

    def test_the_size_limit_is_inclusive(self, alice, settings):
        settings.MAX_UPLOAD_BYTES = 2000
        assert attachments.store_upload(alice, upload("ok.txt", b"a" * 2000)).size == 2000

    def test_anonymous_cannot_upload(self, db):
        from django.contrib.auth.models import AnonymousUser

        with pytest.raises(Unauthenticated):
            attachments.store_upload(AnonymousUser(), png())
        assert stored_files() == []

    def test_uploads_are_rate_limited_per_user(self, alice, bob, settings):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": (2, 60)}
        attachments.store_upload(alice, upload("1.txt", b"one"))
        attachments.store_upload(alice, upload("2.txt", b"two"))
        with pytest.raises(RateLimited) as limited:
            attachments.store_upload(alice, upload("3.txt", b"three"))
        assert 1 <= limited.value.retry_after <= 60
        assert Attachment.objects.count() == 2 and len(stored_files()) == 2
        attachments.store_upload(bob, upload("b.txt", b"bob's own budget"))

    def test_a_failed_row_write_removes_the_stored_files(self, alice, monkeypatch):
        def broken_save(self, *args, **kwargs):
            raise RuntimeError("database went away")

        monkeypatch.setattr(Attachment, "save", broken_save)
        with pytest.raises(RuntimeError):
            attachments.store_upload(alice, png())
        assert stored_files() == []


class TestSendWithFiles:
    def test_files_become_a_message_of_the_room_and_its_event(self, alice, room):
        message = attachments.send_message_with_files(
            alice, room.pk, "look", [png("a.png"), upload("b.txt", b"notes")], client_id="c1"
        )
        assert message.text == "look" and message.room_id == room.pk
        names = list(message.attachments.order_by("pk").values_list("name", "content_type", "width"))
        assert names == [("a.png", "image/png", 800), ("b.txt", "text/plain", None)]
        event = Event.objects.filter(room=room).latest("seq")
        assert event.kind == "MessageAdded"
        assert [(a["name"], a["has_thumbnail"]) for a in event.payload["message"]["attachments"]] == [
            ("a.png", True),
            ("b.txt", False),
        ]

    def test_a_non_member_stores_nothing(self, carol, room):
        with pytest.raises(NotFound):
            attachments.send_message_with_files(carol, room.pk, "hi", [png()])
        assert Attachment.objects.count() == 0 and stored_files() == [] and Message.objects.count() == 0

    def test_one_bad_file_refuses_all_of_them(self, alice, room, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(UnsupportedMediaType):
            attachments.send_message_with_files(alice, room.pk, "hi", [png(), upload("x.png", ELF_HEADER)])
        assert Attachment.objects.count() == 0 and stored_files() == [] and Message.objects.count() == 0

    def test_too_many_files_are_refused_before_storing(self, alice, room, settings):
        settings.MAX_FILES_PER_MESSAGE = 2
        with pytest.raises(BadUserInput):
            attachments.send_message_with_files(alice, room.pk, "", [upload(f"{i}.txt", b"x") for i in range(3)])
        assert Attachment.objects.count() == 0 and stored_files() == []

    def test_a_retry_with_the_same_client_id_keeps_one_copy(self, alice, room, django_capture_on_commit_callbacks):
        first = attachments.send_message_with_files(alice, room.pk, "", [png()], client_id="same")
        kept = stored_files()
        with django_capture_on_commit_callbacks(execute=True):
            again = attachments.send_message_with_files(alice, room.pk, "", [png()], client_id="same")
        assert again.pk == first.pk
        assert Attachment.objects.count() == 1 and stored_files() == kept

    def test_files_go_with_their_message(self, alice, room, django_capture_on_commit_callbacks):
        message = attachments.send_message_with_files(alice, room.pk, "", [png(), upload("n.txt", b"n")])
        assert len(stored_files()) == 3  # image, its thumbnail, text
        with django_capture_on_commit_callbacks(execute=True):
            messages.delete_message(alice, message.pk)
        assert Attachment.objects.count() == 0 and stored_files() == []


class TestDownload:
    def test_members_and_nobody_else(self, alice, bob, carol, room):
        message = attachments.send_message_with_files(alice, room.pk, "", [png()])
        attachment = message.attachments.get()
        for member in (alice, bob):
            download = attachments.open_download(member, attachment.pk)
            with download.file as f:
                assert f.read() == image_bytes(800, 600, "PNG")
            assert (download.content_type, download.inline, download.name) == ("image/png", True, "cat.png")
        for outsider in (carol, None):
            with pytest.raises(NotFound) as refused:
                attachments.open_download(outsider, attachment.pk)
            assert refused.value.message == "Attachment not found."
        with pytest.raises(NotFound) as missing:
            attachments.open_download(alice, attachment.pk + 1000)
        assert missing.value.message == "Attachment not found."

    def test_before_it_is_sent_only_the_uploader(self, alice, bob):
        attachment = attachments.store_upload(alice, upload("n.txt", b"draft"))
        assert attachments.open_download(alice, attachment.pk).inline is False
        with pytest.raises(NotFound):
            attachments.open_download(bob, attachment.pk)

    def test_a_member_who_leaves_loses_access(self, alice, bob, room):
        message = attachments.send_message_with_files(alice, room.pk, "", [png()])
        rooms.leave_room(bob, room.pk)
        with pytest.raises(NotFound):
            attachments.open_download(bob, message.attachments.get().pk)

    def test_thumbnails(self, alice):
        attachment = attachments.store_upload(alice, png())
        thumb = attachments.open_download(alice, attachment.pk, attachments.THUMBNAIL)
        assert (thumb.content_type, thumb.name) == ("image/jpeg", "cat-thumbnail.jpg")
        with thumb.file as f, Image.open(io.BytesIO(f.read())) as image:
            assert image.size == (320, 240)
        text = attachments.store_upload(alice, upload("n.txt", b"no thumbnail"))
        with pytest.raises(NotFound):
            attachments.open_download(alice, text.pk, attachments.THUMBNAIL)


class TestSignedDownloads:
    def sig(self, url: str) -> str:
        return url.split("?sig=", 1)[1]

    def test_a_signed_url_stands_for_its_user_and_is_checked_again(self, alice, bob, room):
        message = attachments.send_message_with_files(alice, room.pk, "", [png()])
        attachment = message.attachments.get()
        url = attachments.download_path(bob, attachment)
        assert url.startswith(f"/api/attachments/{attachment.pk}/download?sig=")
        assert attachments.open_download(None, attachment.pk, signature=self.sig(url)).name == "cat.png"
        rooms.leave_room(bob, room.pk)
        with pytest.raises(NotFound):
            attachments.open_download(None, attachment.pk, signature=self.sig(url))

    def test_a_signature_is_for_one_attachment_and_one_kind(self, alice):
        one = attachments.store_upload(alice, png())
        other = attachments.store_upload(alice, png())
        sig = self.sig(attachments.download_path(alice, one))
        with pytest.raises(NotFound):
            attachments.open_download(None, other.pk, signature=sig)
        with pytest.raises(NotFound):
            attachments.open_download(None, one.pk, attachments.THUMBNAIL, signature=sig)
        with pytest.raises(NotFound):
            attachments.open_download(None, one.pk, signature=sig[:-2] + "xx")

    def test_signatures_expire(self, alice, settings, monkeypatch):
        attachment = attachments.store_upload(alice, png())
        sig = self.sig(attachments.download_path(alice, attachment))
        real_time = signing.time.time
        monkeypatch.setattr(signing.time, "time", lambda: real_time() + settings.DOWNLOAD_URL_MAX_AGE + 5)
        with pytest.raises(NotFound):
            attachments.open_download(None, attachment.pk, signature=sig)

    def test_a_password_change_ends_signed_urls(self, alice):
        attachment = attachments.store_upload(alice, png())
        sig = self.sig(attachments.download_path(alice, attachment))
        alice.set_password("another passphrase 9")
        alice.save()
        with pytest.raises(NotFound):
            attachments.open_download(None, attachment.pk, signature=sig)

    def test_no_url_for_anonymous_and_no_thumbnail_url_for_non_images(self, alice):
        from django.contrib.auth.models import AnonymousUser

        text = attachments.store_upload(alice, upload("n.txt", b"text"))
        assert attachments.download_path(AnonymousUser(), text) is None
        assert attachments.download_path(alice, text, attachments.THUMBNAIL) is None


class TestPrune:
    def test_old_unattached_uploads_go_with_their_files(self, alice, room, django_capture_on_commit_callbacks):
        old = attachments.store_upload(alice, png("old.png"))
        recent = attachments.store_upload(alice, upload("recent.txt", b"r"))
        sent = attachments.send_message_with_files(alice, room.pk, "", [upload("sent.txt", b"s")])
        long_ago = timezone.now() - django_settings.UPLOAD_PRUNE_AFTER - timedelta(minutes=1)
        Attachment.objects.filter(pk__in=[old.pk, *sent.attachments.values_list("pk", flat=True)]).update(
            created_at=long_ago
        )
        out = io.StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("prune_uploads", stdout=out)
        assert "Deleted 1 unattached upload(s)" in out.getvalue()
        assert sorted(Attachment.objects.values_list("name", flat=True)) == ["recent.txt", "sent.txt"]
        assert old.file.name not in stored_files() and old.thumbnail.name not in stored_files()
        assert recent.file.name in stored_files()

    def test_hours_option(self, alice, django_capture_on_commit_callbacks):
        attachments.store_upload(alice, upload("a.txt", b"a"))
        Attachment.objects.update(created_at=timezone.now() - timedelta(hours=2))
        with django_capture_on_commit_callbacks(execute=True):
            call_command("prune_uploads", "--hours", "3", stdout=io.StringIO())
        assert Attachment.objects.count() == 1
        with django_capture_on_commit_callbacks(execute=True):
            call_command("prune_uploads", "--hours", "1", stdout=io.StringIO())
        assert Attachment.objects.count() == 0 and stored_files() == []


def test_s3_storage_by_configuration_alone():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_"))}
    env.update(
        AWS_STORAGE_BUCKET_NAME="chat-uploads",
        AWS_S3_REGION_NAME="eu-west-1",
        AWS_S3_ENDPOINT_URL="http://minio:9000",
        AWS_LOCATION="prod",
    )
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='backend.settings'; django.setup(); "
        "from django.core.files.storage import storages; s = storages['default']; "
        "print(type(s).__module__, type(s).__name__, s.bucket_name, s.region_name, s.endpoint_url, s.location, "
        "s.file_overwrite)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "storages.backends.s3",
        "S3Storage",
        "chat-uploads",
        "eu-west-1",
        "http://minio:9000",
        "prod",
        "False",
    ]
