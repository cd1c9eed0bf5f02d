"""The REST shim, as a plain HTTP client uses it: multipart uploads, messages with
files, authorized downloads, JSON errors."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import AsyncClient, Client
from PIL import Image

from chat import errors
from chat.models import Attachment, Event, Message
from chat.views import _error_response
from schema.global_ids import encode_id
from tests.clients import token_for
from tests.upload_samples import ELF_HEADER, bomb_png, corrupt_png, image_bytes, upload

PNG = image_bytes(800, 600, "PNG")


def stored_files() -> list[str]:
    root = Path(django_settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {token_for(user)}"}


@pytest.fixture
def client(db):
    return Client()


def post_upload(client, user, file, **extra):
    headers = bearer(user) if user else {}
    return client.post("/api/uploads/", {"file": file}, headers=headers, **extra)


def error_of(response) -> dict:
    assert response["Content-Type"] == "application/json", response.content
    return response.json()["error"]


class TestUpload:
    def test_201_with_the_attachment(self, client, alice):
        response = post_upload(client, alice, upload("../Holiday photo.PNG", PNG, "image/jpeg"))
        assert response.status_code == 201, response.content
        body = response.json()
        attachment = Attachment.objects.get()
        assert body == {
            "id": encode_id("Attachment", attachment.pk),
            "databaseId": attachment.pk,
            "name": "Holiday photo.png",
            "contentType": "image/png",
            "size": len(PNG),
            "width": 800,
            "height": 600,
            "downloadUrl": body["downloadUrl"],
            "thumbnailUrl": body["thumbnailUrl"],
            "createdAt": attachment.created_at.isoformat(),
        }
        assert body["downloadUrl"].startswith(f"/api/attachments/{attachment.pk}/download?sig=")
        assert body["thumbnailUrl"].startswith(f"/api/attachments/{attachment.pk}/thumbnail?sig=")
        assert attachment.uploader == alice and attachment.message is None

    def test_a_spooled_upload_is_stored_whole(self, client, alice, settings):
        # Above FILE_UPLOAD_MAX_MEMORY_SIZE Django writes the upload to a temporary file.
        big = b"line of text\n" * 40_000
        assert len(big) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
        response = post_upload(client, alice, upload("big.txt", big))
        assert response.status_code == 201
        with Attachment.objects.get().file.open("rb") as f:
            assert f.read() == big

    @pytest.mark.parametrize(
        ("content", "status", "code"),
        [
            (ELF_HEADER, 415, "UNSUPPORTED_MEDIA_TYPE"),
            (corrupt_png(), 400, "BAD_USER_INPUT"),
            (bomb_png(), 413, "PAYLOAD_TOO_LARGE"),
            (b"", 400, "BAD_USER_INPUT"),
        ],
        ids=["disguised-executable", "corrupt", "bomb", "empty"],
    )
    def test_refusals_store_nothing(self, client, alice, content, status, code):
        response = post_upload(client, alice, upload("cat.png", content, "image/png"))
        assert response.status_code == status
        assert error_of(response)["code"] == code
        assert Attachment.objects.count() == 0 and stored_files() == []

    def test_oversized_413(self, client, alice, settings):
        settings.MAX_UPLOAD_BYTES = 1000
        response = post_upload(client, alice, upload("a.txt", b"a" * 1001))
        assert response.status_code == 413
        assert error_of(response) == {
            "code": "PAYLOAD_TOO_LARGE",
            "message": "The file is 1001 bytes; the limit is 1000 bytes.",
            "maxBytes": 1000,
        }
        assert Attachment.objects.count() == 0 and stored_files() == []

    def test_oversized_by_content_length_413_before_parsing(self, client, alice, settings, monkeypatch):
        settings.MAX_UPLOAD_BYTES = 1000
        parsed = []
        monkeypatch.setattr("django.http.request.HttpRequest._load_post_and_files", lambda self: parsed.append(1))
        response = post_upload(client, alice, upload("a.txt", b"a" * 100_000))
        assert response.status_code == 413 and error_of(response)["code"] == "PAYLOAD_TOO_LARGE"
        assert parsed == [] and stored_files() == []

    def test_anonymous_401(self, client, db):
        response = post_upload(client, None, upload("a.txt", b"hi"))
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="chat"'
        assert error_of(response) == {"code": "UNAUTHENTICATED", "message": "Authentication required."}
        assert stored_files() == []

    def test_a_bad_token_401(self, client, db):
        response = client.post(
            "/api/uploads/", {"file": upload("a.txt", b"hi")}, headers={"Authorization": "JWT x.y.z"}
        )
        assert response.status_code == 401 and error_of(response)["message"] == "Invalid token."

    def test_a_session_cookie_does_not_authenticate(self, client, alice):
        client.force_login(alice)
        response = client.post("/api/uploads/", {"file": upload("a.txt", b"hi")})
        assert response.status_code == 401
        assert Attachment.objects.count() == 0

    def test_no_csrf_token_needed_with_a_jwt(self, alice):
        strict = Client(enforce_csrf_checks=True)
        assert post_upload(strict, alice, upload("a.txt", b"hi")).status_code == 201

    def test_exactly_one_file(self, client, alice):
        response = client.post("/api/uploads/", {"text": "no file"}, headers=bearer(alice))
        assert response.status_code == 400
        assert error_of(response)["fields"] == {"file": ["Exactly one file."]}

    def test_rate_limited_429_with_retry_after(self, client, alice, settings):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": (1, 60)}
        assert post_upload(client, alice, upload("a.txt", b"a")).status_code == 201
        response = post_upload(client, alice, upload("b.txt", b"b"))
        assert response.status_code == 429
        assert 1 <= int(response["Retry-After"]) <= 60
        assert error_of(response)["retryAfter"] == int(response["Retry-After"])
        assert Attachment.objects.count() == 1

    def test_get_405(self, client, alice):
        response = client.get("/api/uploads/", headers=bearer(alice))
        assert response.status_code == 405 and response["Allow"] == "POST"
        assert error_of(response)["code"] == "METHOD_NOT_ALLOWED"


class TestPostMessage:
    def url(self, room_id) -> str:
        return f"/api/rooms/{room_id}/messages/"

    def test_201_with_the_message_and_its_files(self, client, alice, room):
        response = client.post(
            self.url(encode_id("Room", room.pk)),
            {"text": "holiday", "clientId": "k1", "file": [upload("a.png", PNG), upload("notes.txt", b"n")]},
            headers=bearer(alice),
        )
        assert response.status_code == 201, response.content
        body = response.json()
        message = Message.objects.get()
        assert {k: body[k] for k in ("id", "roomId", "text", "clientId", "sender")} == {
            "id": encode_id("Message", message.pk),
            "roomId": encode_id("Room", room.pk),
            "text": "holiday",
            "clientId": "k1",
            "sender": {"id": encode_id("User", alice.pk), "username": "alice", "displayName": "Alice"},
        }
        assert [(a["name"], a["contentType"], a["width"]) for a in body["attachments"]] == [
            ("a.png", "image/png", 800),
            ("notes.txt", "text/plain", None),
        ]
        assert body["attachments"][1]["thumbnailUrl"] is None
        event = Event.objects.filter(room_id=room.pk, kind="MessageAdded").get()
        assert [a["name"] for a in event.payload["message"]["attachments"]] == ["a.png", "notes.txt"]

    def test_the_numeric_room_id_works_too_and_text_may_be_empty(self, client, alice, room):
        response = client.post(self.url(room.pk), {"file": upload("a.txt", b"x")}, headers=bearer(alice))
        assert response.status_code == 201
        assert response.json()["text"] == ""

    def test_text_only(self, client, alice, room):
        response = client.post(self.url(room.pk), {"text": "just words"}, headers=bearer(alice))
        assert response.status_code == 201 and response.json()["attachments"] == []

    def test_neither_text_nor_file_400(self, client, alice, room):
        response = client.post(self.url(room.pk), {"text": "  "}, headers=bearer(alice))
        assert response.status_code == 400 and error_of(response)["code"] == "BAD_USER_INPUT"
        assert Message.objects.count() == 0

    # "¹" and "٣" are digits to str.isdigit(), not to int(); "Um9vbTrCuQ==" is "Room:¹".
    @pytest.mark.parametrize("room_id", ["non-member", "999999", "bm9wZTox", "Um9vbTo=", "¹", "٣", "Um9vbTrCuQ=="])
    def test_404_for_non_members_and_missing_rooms_storing_nothing(self, client, carol, room, room_id):
        room_id = room.pk if room_id == "non-member" else room_id
        response = client.post(self.url(room_id), {"text": "hi", "file": upload("a.png", PNG)}, headers=bearer(carol))
        assert response.status_code == 404
        assert error_of(response) == {"code": "NOT_FOUND", "message": "Room not found."}
        assert Message.objects.count() == 0 and Attachment.objects.count() == 0 and stored_files() == []

    def test_a_disguised_file_refuses_the_whole_message(self, client, alice, room):
        response = client.post(
            self.url(room.pk),
            {"text": "hi", "file": [upload("a.png", PNG), upload("b.png", ELF_HEADER)]},
            headers=bearer(alice),
        )
        assert response.status_code == 415
        assert Message.objects.count() == 0 and Attachment.objects.count() == 0

    def test_too_many_files_400(self, client, alice, room, settings):
        settings.MAX_FILES_PER_MESSAGE = 2
        files = [upload(f"{i}.txt", b"x") for i in range(3)]
        response = client.post(self.url(room.pk), {"file": files}, headers=bearer(alice))
        assert response.status_code == 400
        assert error_of(response)["message"] == "At most 2 files per message."
        assert Attachment.objects.count() == 0

    def test_anonymous_401(self, client, room):
        response = client.post(self.url(room.pk), {"text": "hi"})
        assert response.status_code == 401 and Message.objects.count() == 0


class TestDownload:
    @pytest.fixture
    def sent(self, client, alice, room):
        """A message of alice's in the room with an image and a text file; returns its JSON."""
        response = client.post(
            f"/api/rooms/{room.pk}/messages/",
            {"text": "", "file": [upload("a.png", PNG), upload("notes.txt", b"plain notes")]},
            headers=bearer(alice),
        )
        assert response.status_code == 201
        return response.json()

    def url(self, attachment: dict, kind: str = "download") -> str:
        return f"/api/attachments/{attachment['databaseId']}/{kind}"

    def test_a_member_gets_an_image_inline(self, client, bob, sent):
        response = client.get(self.url(sent["attachments"][0]), headers=bearer(bob))
        assert response.status_code == 200
        assert response.streaming
        assert b"".join(response.streaming_content) == PNG
        assert response["Content-Type"] == "image/png"
        assert response["Content-Disposition"] == 'inline; filename="a.png"'
        assert response["Content-Length"] == str(len(PNG))
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Cache-Control"] == "private, no-store"

    def test_other_files_are_downloads(self, client, bob, sent):
        response = client.get(self.url(sent["attachments"][1]), headers=bearer(bob))
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == b"plain notes"
        assert response["Content-Type"] == "text/plain"
        assert response["Content-Disposition"] == 'attachment; filename="notes.txt"'
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"]

    def test_the_global_id_works_too(self, client, bob, sent):
        attachment = sent["attachments"][1]
        response = client.get(f"/api/attachments/{attachment['id']}/download", headers=bearer(bob))
        assert response.status_code == 200

    def test_thumbnail(self, client, bob, sent):
        response = client.get(self.url(sent["attachments"][0], "thumbnail"), headers=bearer(bob))
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
        with Image.open(io.BytesIO(b"".join(response.streaming_content))) as thumb:
            assert (thumb.format, thumb.size) == ("JPEG", (320, 240))
        missing = client.get(self.url(sent["attachments"][1], "thumbnail"), headers=bearer(bob))
        assert missing.status_code == 404

    def test_non_members_and_anonymous_get_the_same_404_as_a_missing_file(self, client, carol, sent):
        attachment = sent["attachments"][0]
        missing = client.get(f"/api/attachments/{attachment['databaseId'] + 1000}/download", headers=bearer(carol))
        non_member = client.get(self.url(attachment), headers=bearer(carol))
        anonymous = client.get(self.url(attachment))
        thumb = client.get(self.url(attachment, "thumbnail"), headers=bearer(carol))
        for response in (missing, non_member, anonymous, thumb):
            assert response.status_code == 404
            assert response.json() == {"error": {"code": "NOT_FOUND", "message": "Attachment not found."}}

    def test_a_signed_url_needs_no_header_and_is_bound_to_its_attachment(self, client, sent):
        image, text = sent["attachments"]
        assert client.get(image["downloadUrl"]).status_code == 200
        assert client.get(image["thumbnailUrl"]).status_code == 200
        sig = image["downloadUrl"].split("?", 1)[1]
        assert client.get(f"{self.url(text)}?{sig}").status_code == 404
        assert client.get(f"{self.url(image, 'thumbnail')}?{sig}").status_code == 404
        assert client.get(f"{self.url(image)}?sig=forged").status_code == 404

    def test_files_go_with_their_message(self, client, alice, bob, sent, django_capture_on_commit_callbacks):
        image, text = sent["attachments"]
        assert len(stored_files()) == 3
        with django_capture_on_commit_callbacks(execute=True):
            body = gql_delete(client, alice, sent["id"])
        assert body == {"data": {"deleteMessage": {"isDeleted": True, "attachments": []}}}
        assert stored_files() == [] and Attachment.objects.count() == 0
        for attachment in (image, text):
            assert client.get(self.url(attachment), headers=bearer(bob)).status_code == 404
        assert client.get(image["downloadUrl"]).status_code == 404


def gql_delete(client, user, message_id: str) -> dict:
    query = "mutation Delete($id: ID!) { deleteMessage(id: $id) { isDeleted attachments { id } } }"
    response = client.post(
        "/graphql/",
        {"query": query, "variables": {"id": message_id}},
        content_type="application/json",
        headers=bearer(user),
    )
    return response.json()


@pytest.mark.django_db(transaction=True)
async def test_downloads_stream_under_asgi_without_buffering(alice):
    """Under ASGI (daphne) Django reads a synchronous streaming response whole into
    memory and warns; the download streams block by block instead."""
    from asgiref.sync import sync_to_async

    from chat.services import attachments

    big = b"0123456789abcdef\n" * 20_000  # 340 kB: several 64 kB blocks
    attachment = await sync_to_async(attachments.store_upload)(alice, upload("big.txt", big))
    token = await sync_to_async(token_for)(alice)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="StreamingHttpResponse must consume")
        response = await AsyncClient().get(
            f"/api/attachments/{attachment.pk}/download", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200 and response.streaming
        chunks = [chunk async for chunk in response]
    assert b"".join(chunks) == big
    assert len(chunks) == -(-len(big) // (64 * 1024))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.BadUserInput(), 400),
        (errors.Unauthenticated(), 401),
        (errors.Forbidden(), 403),
        (errors.NotFound(), 404),
        (errors.PayloadTooLarge(), 413),
        (errors.UnsupportedMediaType(), 415),
        (errors.RateLimited(retry_after=7), 429),
    ],
)
def test_every_domain_error_is_json_with_its_status(error, status):
    response = _error_response(error)
    assert response.status_code == status
    body = json.loads(response.content)
    assert body["error"]["code"] == error.code and body["error"]["message"] == error.message
    assert response.get("Retry-After") == ("7" if status == 429 else None)


def test_the_proxy_body_limits_match_the_upload_settings():
    """deploy/nginx.conf refuses by Content-Length what the app would refuse anyway:
    one file plus 1 MiB of multipart overhead on /api/uploads/, a message's files
    plus overhead on /api/rooms/ and /graphql, 1 MiB elsewhere."""
    import re

    conf = (Path(django_settings.BASE_DIR) / "deploy" / "nginx.conf").read_text()
    limits = {}
    for location, body in re.findall(r"location ([^{]+?) \{(.*?)\}", conf, flags=re.S):
        found = re.search(r"client_max_body_size (\d+)m;", body)
        if found:
            limits[location.strip()] = int(found.group(1)) * 1024 * 1024
    mib = 1024 * 1024
    one_file = django_settings.MAX_UPLOAD_BYTES + mib
    all_files = django_settings.MAX_UPLOAD_BYTES * django_settings.MAX_FILES_PER_MESSAGE + mib
    assert limits == {"= /api/uploads/": one_file, "/api/rooms/": all_files, "/graphql": all_files}
    assert re.search(r"^    client_max_body_size 1m;", conf, flags=re.M)
