"""Uploads over GraphQL, as a client speaking the GraphQL multipart request spec
does it (operations, map and file parts), and delivery of files to subscribers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.test import AsyncClient, Client

from chat.models import Attachment, Message, Room
from chat.services import rooms
from schema.global_ids import encode_id
from tests.clients import WSClient, group_size, token_for
from tests.upload_samples import ELF_HEADER, bomb_png, corrupt_png, image_bytes, upload

PNG = image_bytes(800, 600, "PNG")

ATTACHMENT_FIELDS = "id name contentType size width height downloadUrl thumbnailUrl"
UPLOAD_ATTACHMENT = f"""
mutation Upload($file: Upload!) {{ uploadAttachment(file: $file) {{ {ATTACHMENT_FIELDS} }} }}
"""
SEND_MESSAGE = f"""
mutation Send($input: SendMessageInput!) {{
  sendMessage(input: $input) {{ id text attachments {{ {ATTACHMENT_FIELDS} }} }}
}}
"""
ROOM_EVENTS = f"""
subscription RoomEvents($roomId: ID) {{
  roomEvents(roomId: $roomId) {{
    __typename
    ... on MessageAdded {{ message {{ id text sender {{ username }} attachments {{ {ATTACHMENT_FIELDS} }} }} }}
  }}
}}
"""
MESSAGE_ADDED = f"""
subscription MessageAdded($roomId: ID) {{
  messageAdded(roomId: $roomId) {{ message {{ text attachments {{ {ATTACHMENT_FIELDS} }} }} }}
}}
"""


def stored_files() -> list[str]:
    root = Path(django_settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def multipart_data(query: str, variables: dict, files: dict) -> dict:
    """The form fields of a GraphQL multipart request: ``operations`` with nulls where
    the files go, ``map`` from part names to variable paths, then one part per file."""
    part_map = {str(i): [path] for i, path in enumerate(files)}
    return {
        "operations": json.dumps({"query": query, "variables": variables}),
        "map": json.dumps(part_map),
        **{str(i): file for i, file in enumerate(files.values())},
    }


def post_multipart(client, user, query: str, variables: dict, files: dict):
    headers = {"Authorization": f"JWT {token_for(user)}"} if user else {}
    return client.post("/graphql/", multipart_data(query, variables, files), headers=headers)


def gql_multipart(client, user, query, variables, files) -> dict:
    response = post_multipart(client, user, query, variables, files)
    assert response.status_code < 500, response.content
    return response.json()


@pytest.fixture
def client(db):
    return Client()


def rid(room: Room) -> str:
    return encode_id("Room", room.pk)


class TestUploadAttachment:
    def test_upload_then_send_by_id(self, client, alice, bob, room):
        body = gql_multipart(client, alice, UPLOAD_ATTACHMENT, {"file": None}, {"variables.file": upload("a.png", PNG)})
        assert "errors" not in body, body
        uploaded = body["data"]["uploadAttachment"]
        attachment = Attachment.objects.get()
        assert {k: v for k, v in uploaded.items() if not k.endswith("Url")} == {
            "id": encode_id("Attachment", attachment.pk),
            "name": "a.png",
            "contentType": "image/png",
            "size": len(PNG),
            "width": 800,
            "height": 600,
        }
        # Unattached: the uploader's URL works, and it works for nobody else.
        assert client.get(uploaded["downloadUrl"]).status_code == 200
        assert client.get(uploaded["downloadUrl"].replace("/download", "/thumbnail")).status_code == 404

        sent = client.post(
            "/graphql/",
            {"query": SEND_MESSAGE, "variables": {"input": {"roomId": rid(room), "attachmentIds": [uploaded["id"]]}}},
            content_type="application/json",
            headers={"Authorization": f"JWT {token_for(alice)}"},
        ).json()
        assert "errors" not in sent, sent
        assert [a["id"] for a in sent["data"]["sendMessage"]["attachments"]] == [uploaded["id"]]
        assert Attachment.objects.get().message_id == Message.objects.get().pk

    def test_a_raw_multipart_body_built_by_hand(self, client, alice):
        boundary = "----chat-test-boundary"
        operations = json.dumps({"query": UPLOAD_ATTACHMENT, "variables": {"file": None}})
        body = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="operations"\r\n\r\n'
            f"{operations}\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="map"\r\n\r\n'
            '{"0": ["variables.file"]}\r\n'
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="0"; filename="notes.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
            "hello from curl\r\n"
            f"--{boundary}--\r\n"
        ).encode()
        response = client.post(
            "/graphql/",
            body,
            content_type=f"multipart/form-data; boundary={boundary}",
            headers={"Authorization": f"Bearer {token_for(alice)}"},
        )
        result = response.json()
        assert result["data"]["uploadAttachment"]["name"] == "notes.txt"
        assert result["data"]["uploadAttachment"]["contentType"] == "text/plain"
        with Attachment.objects.get().file.open("rb") as f:
            assert f.read() == b"hello from curl"

    def test_anonymous_is_unauthenticated_and_nothing_is_stored(self, client, db):
        body = gql_multipart(client, None, UPLOAD_ATTACHMENT, {"file": None}, {"variables.file": upload("a.png", PNG)})
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert Attachment.objects.count() == 0 and stored_files() == []

    def test_a_session_cookie_does_not_authenticate_uploads(self, client, alice):
        client.force_login(alice)
        body = gql_multipart(client, None, UPLOAD_ATTACHMENT, {"file": None}, {"variables.file": upload("a.png", PNG)})
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert Attachment.objects.count() == 0

    @pytest.mark.parametrize(
        ("content", "code"),
        [
            (ELF_HEADER, "UNSUPPORTED_MEDIA_TYPE"),
            (corrupt_png(), "BAD_USER_INPUT"),
            (bomb_png(), "PAYLOAD_TOO_LARGE"),
            (b"x" * 3000, "PAYLOAD_TOO_LARGE"),
        ],
        ids=["disguised", "corrupt", "bomb", "oversized"],
    )
    def test_refusals_store_nothing(self, client, alice, settings, content, code):
        if code == "PAYLOAD_TOO_LARGE" and content.startswith(b"x"):
            settings.MAX_UPLOAD_BYTES = len(content) - 1
        body = gql_multipart(
            client, alice, UPLOAD_ATTACHMENT, {"file": None}, {"variables.file": upload("cat.png", content)}
        )
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == code
        assert Attachment.objects.count() == 0 and stored_files() == []


class TestSendMessageWithFiles:
    def test_files_in_the_same_request(self, client, alice, bob, room):
        body = gql_multipart(
            client,
            alice,
            SEND_MESSAGE,
            {"input": {"roomId": rid(room), "text": "two files", "files": [None, None]}},
            {
                "variables.input.files.0": upload("a.png", PNG),
                "variables.input.files.1": upload("b.txt", b"notes"),
            },
        )
        assert "errors" not in body, body
        message = body["data"]["sendMessage"]
        assert message["text"] == "two files"
        assert [(a["name"], a["width"], a["thumbnailUrl"] is None) for a in message["attachments"]] == [
            ("a.png", 800, False),
            ("b.txt", None, True),
        ]
        # The URLs in alice's answer are alice's; bob, a member, gets his own from a query.
        image = message["attachments"][0]
        response = client.get(image["downloadUrl"])
        assert response.status_code == 200 and b"".join(response.streaming_content) == PNG

    def test_a_bad_file_refuses_the_message(self, client, alice, room, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            body = gql_multipart(
                client,
                alice,
                SEND_MESSAGE,
                {"input": {"roomId": rid(room), "text": "x", "files": [None, None]}},
                {
                    "variables.input.files.0": upload("a.png", PNG),
                    "variables.input.files.1": upload("b.png", ELF_HEADER),
                },
            )
        assert body["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
        assert Message.objects.count() == 0 and Attachment.objects.count() == 0 and stored_files() == []

    def test_a_non_member_stores_nothing(self, client, make_user, room):
        carol = make_user("carol")
        body = gql_multipart(
            client,
            carol,
            SEND_MESSAGE,
            {"input": {"roomId": rid(room), "text": "x", "files": [None]}},
            {"variables.input.files.0": upload("a.png", PNG)},
        )
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert Attachment.objects.count() == 0 and stored_files() == []


@pytest.mark.django_db(transaction=True)
class TestSubscribersGetTheFiles:
    async def connect(self, user) -> WSClient:
        client = WSClient(token=await sync_to_async(token_for)(user))
        ack = await client.connect()
        assert ack["type"] == "connection_ack", ack
        return client

    async def wait_for_group(self, group: str) -> None:
        """Until a socket listens on ``group`` (whichever channel layer runs)."""
        for _ in range(200):
            if await group_size(group):
                await asyncio.sleep(0.15)
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"nobody joined {group}")

    async def next_message_added(self, ws: WSClient, op_id: str) -> dict:
        while True:
            payload = await ws.next(op_id)
            assert "errors" not in payload, payload
            event = next(iter(payload["data"].values()))
            if event.get("__typename", "MessageAdded") == "MessageAdded":
                return event["message"]

    async def test_a_rest_message_with_files_reaches_room_subscribers(self, alice, bob, make_user):
        room = await sync_to_async(lambda: rooms.join_room(bob, rooms.create_room(alice, "photos").pk))()
        bob_ws = await self.connect(bob)
        op = await bob_ws.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await self.wait_for_group(f"room.{room.pk}")

        token = await sync_to_async(token_for)(alice)
        http = AsyncClient()
        response = await http.post(
            f"/api/rooms/{room.pk}/messages/",
            {"text": "from REST", "file": [upload("a.png", PNG), upload("n.txt", b"notes")]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.content

        message = await self.next_message_added(bob_ws, op)
        assert (message["text"], message["sender"]) == ("from REST", {"username": "alice"})
        image, text = message["attachments"]
        assert (image["name"], image["contentType"], image["size"], image["width"], image["height"]) == (
            "a.png",
            "image/png",
            len(PNG),
            800,
            600,
        )
        assert (text["name"], text["contentType"], text["thumbnailUrl"]) == ("n.txt", "text/plain", None)
        # The subscriber's own signed URLs fetch the bytes and the thumbnail without a header.
        download = await http.get(image["downloadUrl"])
        assert download.status_code == 200
        assert b"".join([chunk async for chunk in download]) == PNG
        assert (await http.get(image["thumbnailUrl"])).status_code == 200
        await bob_ws.close()

    async def test_a_graphql_multipart_message_reaches_message_added(self, alice, bob):
        room = await sync_to_async(lambda: rooms.join_room(bob, rooms.create_room(alice, "photos").pk))()
        bob_ws = await self.connect(bob)
        op = await bob_ws.subscribe(MESSAGE_ADDED, {"roomId": rid(room)})
        await self.wait_for_group(f"room.{room.pk}")

        token = await sync_to_async(token_for)(alice)
        response = await AsyncClient().post(
            "/graphql/",
            multipart_data(
                SEND_MESSAGE,
                {"input": {"roomId": rid(room), "text": "", "files": [None]}},
                {"variables.input.files.0": upload("pic.png", PNG)},
            ),
            headers={"Authorization": f"JWT {token}"},
        )
        assert "errors" not in response.json(), response.json()

        message = await self.next_message_added(bob_ws, op)
        assert message["text"] == ""
        assert [(a["name"], a["width"], a["height"]) for a in message["attachments"]] == [("pic.png", 800, 600)]
        await bob_ws.close()
