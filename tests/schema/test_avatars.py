"""Avatars through the API: an image uploaded with the REST shim becomes a user's
or room's square picture (64 and 256 pixels, re-encoded), served by signed URLs
to whoever may see the user or room; null clears; bad uploads are refused and
change nothing."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from chat.models import Attachment, Avatar, Event, Room, User
from chat.services import rooms as room_services
from schema.global_ids import encode_id
from tests.clients import token_for
from tests.upload_samples import image_bytes, upload

UPDATE_PROFILE = (
    "mutation Profile($input: UpdateProfileInput!) "
    "{ updateProfile(input: $input) { username small: avatarUrl(size: 64) large: avatarUrl(size: 256) } }"
)
UPDATE_ROOM = (
    "mutation Room($input: UpdateRoomInput!) "
    "{ updateRoom(input: $input) { name small: avatarUrl(size: 64) large: avatarUrl } }"
)
USER_AVATAR = "query U($id: ID!, $size: Int) { user(id: $id) { avatarUrl(size: $size) } }"
ROOM_AVATAR = "query R($id: ID!) { room(id: $id) { avatarUrl(size: 64) } }"


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {token_for(user)}"}


def uploaded(client, user, content: bytes, name: str = "me.png") -> str:
    response = client.post("/api/uploads/", {"file": upload(name, content)}, headers=bearer(user))
    assert response.status_code == 201, response.content
    return response.json()["id"]


def fetch_image(client, url: str, user=None) -> Image.Image:
    response = client.get(url, headers=bearer(user) if user else {})
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "private, no-store"
    return Image.open(io.BytesIO(b"".join(response.streaming_content)))


def error_code(body: dict) -> str:
    assert body["data"] is None, body
    return body["errors"][0]["extensions"]["code"]


def state() -> dict:
    return {
        "users": list(User.objects.order_by("pk").values_list("pk", "avatar_id")),
        "rooms": list(Room.objects.order_by("pk").values_list("pk", "avatar_id", "last_seq")),
        "avatars": list(Avatar.objects.order_by("pk").values_list("pk", "small", "large")),
        "uploads": list(Attachment.objects.order_by("pk").values_list("pk", "message_id")),
    }


class TestProfile:
    def test_an_upload_becomes_square_pictures_of_both_sizes(self, client, gql, alice, bob):
        upload_id = uploaded(client, alice, image_bytes(300, 200, "JPEG"))
        body = gql(UPDATE_PROFILE, {"input": {"avatarId": upload_id}}, user=alice)
        assert "errors" not in body, body
        urls = body["data"]["updateProfile"]
        assert urls["small"].startswith("/api/avatars/") and "/64?sig=" in urls["small"]
        assert "/256?sig=" in urls["large"]
        small, large = fetch_image(client, urls["small"]), fetch_image(client, urls["large"])
        assert (small.size, large.size) == ((64, 64), (256, 256))
        assert small.format == "JPEG"
        assert not Attachment.objects.exists()  # the upload was used up, files and all
        # Whoever can see alice gets her picture, with a URL of their own.
        seen = gql(USER_AVATAR, {"id": encode_id("User", alice.pk), "size": 64}, user=bob)
        assert fetch_image(client, seen["data"]["user"]["avatarUrl"]).size == (64, 64)
        assert seen["data"]["user"]["avatarUrl"] != urls["small"]

    def test_a_transparent_image_stays_png_and_replacing_deletes_the_old_files(
        self, client, gql, alice, django_capture_on_commit_callbacks
    ):
        first = uploaded(client, alice, image_bytes(50, 80, "PNG"))
        gql(UPDATE_PROFILE, {"input": {"avatarId": first}}, user=alice)
        old = Avatar.objects.get()
        old_files = [old.small.name, old.large.name]
        second = uploaded(client, alice, image_bytes(120, 120, "PNG", mode="RGBA"))
        with django_capture_on_commit_callbacks(execute=True):
            body = gql(UPDATE_PROFILE, {"input": {"avatarId": second}}, user=alice)
        image = fetch_image(client, body["data"]["updateProfile"]["large"])
        assert (image.format, image.size) == ("PNG", (256, 256))
        assert Avatar.objects.count() == 1 and Avatar.objects.get().pk != old.pk
        assert not any(default_storage.exists(name) for name in old_files)

    def test_null_clears_and_leaving_it_out_keeps(self, client, gql, alice, django_capture_on_commit_callbacks):
        upload_id = uploaded(client, alice, image_bytes(64, 64))
        with django_capture_on_commit_callbacks(execute=True):
            gql(UPDATE_PROFILE, {"input": {"avatarId": upload_id}}, user=alice)
        assert not Attachment.objects.exists()
        avatar = Avatar.objects.get()
        kept = gql(UPDATE_PROFILE, {"input": {"displayName": "Al"}}, user=alice)["data"]["updateProfile"]
        assert kept["small"] is not None
        with django_capture_on_commit_callbacks(execute=True):
            cleared = gql(UPDATE_PROFILE, {"input": {"avatarId": None}}, user=alice)["data"]["updateProfile"]
        assert cleared == {"username": "alice", "small": None, "large": None}
        assert not Avatar.objects.exists()
        assert not default_storage.exists(avatar.small.name)

    def test_refused_uploads_change_nothing(self, client, gql, alice, bob, room):
        bobs = uploaded(client, bob, image_bytes(64, 64))
        text = uploaded(client, alice, b"just some text", name="notes.txt")
        attached = uploaded(client, alice, image_bytes(64, 64))
        body = gql(
            "mutation S($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
            {"input": {"roomId": encode_id("Room", room.pk), "attachmentIds": [attached]}},
            user=alice,
        )
        assert "errors" not in body, body
        before = state()
        cases = [
            (bobs, "BAD_USER_INPUT"),  # someone else's upload
            (attached, "BAD_USER_INPUT"),  # already attached to a message
            (encode_id("Attachment", 99999), "BAD_USER_INPUT"),
            (text, "UNSUPPORTED_MEDIA_TYPE"),
            ("garbage", "BAD_USER_INPUT"),
            (encode_id("User", alice.pk), "NOT_FOUND"),
        ]
        for avatar_id, code in cases:
            assert error_code(gql(UPDATE_PROFILE, {"input": {"avatarId": avatar_id}}, user=alice)) == code, avatar_id
        assert error_code(gql(UPDATE_PROFILE, {"input": {"avatarId": bobs}}, user=None)) == "UNAUTHENTICATED"
        assert state() == before

    def test_only_sizes_64_and_256(self, gql, alice):
        body = gql(USER_AVATAR, {"id": encode_id("User", alice.pk), "size": 100}, user=alice)
        assert body["data"] == {"user": {"avatarUrl": None}}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


class TestRoom:
    def test_owners_and_admins_set_it_members_see_it_and_get_an_event(self, client, gql, room, alice, bob, carol):
        mark = Event.objects.filter(room=room).count()
        body = gql(
            UPDATE_ROOM,
            {"input": {"roomId": encode_id("Room", room.pk), "avatarId": uploaded(client, alice, image_bytes())}},
            user=alice,
        )
        assert "errors" not in body, body
        assert fetch_image(client, body["data"]["updateRoom"]["small"]).size == (64, 64)
        assert list(Event.objects.filter(room=room).values_list("kind", flat=True))[mark:] == ["RoomUpdated"]
        # A public room: anyone signed in sees it, members or not.
        for viewer in (bob, carol):
            url = gql(ROOM_AVATAR, {"id": encode_id("Room", room.pk)}, user=viewer)["data"]["room"]["avatarUrl"]
            assert fetch_image(client, url).size == (64, 64)
        # A plain member may not change it.
        before = state()
        bobs = uploaded(client, bob, image_bytes())
        before["uploads"] = state()["uploads"]
        body = gql(UPDATE_ROOM, {"input": {"roomId": encode_id("Room", room.pk), "avatarId": bobs}}, user=bob)
        assert error_code(body) == "FORBIDDEN"
        assert state() == before
        cleared = gql(UPDATE_ROOM, {"input": {"roomId": encode_id("Room", room.pk), "avatarId": None}}, user=alice)
        assert cleared["data"]["updateRoom"]["small"] is None
        assert not Avatar.objects.exists()

    def test_a_private_rooms_picture_is_for_its_members_only(self, client, gql, alice, bob, carol):
        private = room_services.create_room(alice, "hidden", is_private=True, member_ids=[bob.pk])
        body = gql(
            UPDATE_ROOM,
            {"input": {"roomId": encode_id("Room", private.pk), "avatarId": uploaded(client, alice, image_bytes())}},
            user=alice,
        )
        alices_url = body["data"]["updateRoom"]["small"]
        avatar = Avatar.objects.get()
        assert fetch_image(client, f"/api/avatars/{avatar.pk}/64", user=bob).size == (64, 64)
        # Carol cannot see the room: not with her token, not with alice's URL re-signed for her, not anonymously.
        assert client.get(f"/api/avatars/{avatar.pk}/64", headers=bearer(carol)).status_code == 404
        assert client.get(f"/api/avatars/{avatar.pk}/64").status_code in (401, 404)
        forged = alices_url.replace(f"/{avatar.pk}/64?", f"/{avatar.pk}/256?")
        assert client.get(forged).status_code == 404  # a signature is for one size
        assert client.get(f"/api/avatars/{avatar.pk}/100", headers=bearer(bob)).status_code == 404
        assert client.get("/api/avatars/nope/64", headers=bearer(bob)).status_code == 404
        # The signed URL works without a header, until the signer leaves the room.
        assert fetch_image(client, alices_url).size == (64, 64)
        room_services.remove_member(alice, private.pk, bob.pk)
        assert client.get(f"/api/avatars/{avatar.pk}/64", headers=bearer(bob)).status_code == 404


@pytest.mark.django_db
def test_anonymous_callers_see_no_avatar_urls(client, gql, alice):
    gql(UPDATE_PROFILE, {"input": {"avatarId": uploaded(client, alice, image_bytes(64, 64))}}, user=alice)
    body = gql(USER_AVATAR, {"id": encode_id("User", alice.pk)})
    assert error_code(body) == "UNAUTHENTICATED"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["outsider", "member", "admin", "owner", "staff"])
def test_who_may_set_a_room_picture_and_their_own(client, gql, world, role):
    """Every signed-in role sets its own picture; a room's picture takes an owner, admin or staff."""
    user = world.user(role)
    mine = uploaded(client, user, image_bytes(80, 80))
    others = uploaded(client, world.other_member, image_bytes(80, 80))
    before = state()
    body = gql(UPDATE_ROOM, {"input": {"roomId": encode_id("Room", world.public.pk), "avatarId": mine}}, user=user)
    if role in ("outsider", "member"):
        assert error_code(body) == "FORBIDDEN"
        assert state() == before
    else:
        assert body["data"]["updateRoom"]["small"].startswith(
            f"/api/avatars/{Room.objects.get(pk=world.public.pk).avatar_id}/64?"
        )
        mine = uploaded(client, user, image_bytes(80, 80))
    before = state()
    assert error_code(gql(UPDATE_PROFILE, {"input": {"avatarId": others}}, user=user)) == "BAD_USER_INPUT"
    assert state() == before
    body = gql(UPDATE_PROFILE, {"input": {"avatarId": mine}}, user=user)
    assert body["data"]["updateProfile"]["username"] == user.username
    assert User.objects.get(pk=user.pk).avatar_id is not None


ROOM_EVENTS_WITH_PICTURES = """
subscription Events($roomId: ID) {
  roomEvents(roomId: $roomId) {
    __typename
    ... on MessageAdded { message { text sender { username avatarUrl(size: 64) } } }
    ... on RoomUpdated { room { name avatarUrl(size: 64) } }
  }
}
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_live_events_carry_pictures(protocol, agql, room, alice, bob):
    from asgiref.sync import sync_to_async

    from chat.services import messages as message_services
    from tests.clients import WSClient
    from tests.schema.test_subscriptions import events_of, until_listening

    def set_pictures():
        from django.test import Client

        client = Client()
        alices = uploaded(client, alice, image_bytes(64, 64))
        User.objects.filter(pk=alice.pk).update(avatar=Avatar.objects.create(small="s.png", large="l.png"))
        return alices

    upload_id = await sync_to_async(set_pictures)()
    client = WSClient(token=await sync_to_async(token_for)(bob), protocol=protocol)
    assert (await client.connect())["type"] == "connection_ack"
    try:
        op = await client.subscribe(ROOM_EVENTS_WITH_PICTURES, {"roomId": encode_id("Room", room.pk)})
        await until_listening(f"room.{room.pk}")
        await sync_to_async(message_services.send_message)(alice, room.pk, "look at me")
        [added] = await events_of(client, op, 1)
        assert added["message"]["sender"]["username"] == "alice"
        assert added["message"]["sender"]["avatarUrl"].startswith("/api/avatars/")
        body = await agql(
            UPDATE_ROOM, {"input": {"roomId": encode_id("Room", room.pk), "avatarId": upload_id}}, user=alice
        )
        assert "errors" not in body, body
        [updated] = await events_of(client, op, 1)
        assert updated["__typename"] == "RoomUpdated"
        avatar_id = await sync_to_async(lambda: Room.objects.get(pk=room.pk).avatar_id)()
        assert updated["room"]["avatarUrl"].startswith(f"/api/avatars/{avatar_id}/64?sig=")
    finally:
        await client.close()
