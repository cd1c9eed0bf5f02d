"""Deleted means gone, edited means replaced: a resumed subscription replays the
message as it is now (a tombstone, the current text), never a stored copy of
removed content; nothing in the database keeps it either."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.test import AsyncClient

from chat.events import room_group
from chat.models import Attachment, Event
from chat.realtime import encode_cursor
from tests.clients import token_for
from tests.schema.test_subscriptions import (
    DELETE_MESSAGE,
    EDIT_MESSAGE,
    PROTOCOLS,
    SEND_MESSAGE,
    connect,
    events_of,
    rid,
    until_listening,
)
from tests.upload_samples import image_bytes, upload

pytestmark = pytest.mark.django_db(transaction=True)

ROOM_EVENTS = """
subscription RoomEvents($roomId: ID, $after: String) {
  roomEvents(roomId: $roomId, after: $after) {
    __typename cursor seq
    ... on MessageAdded { message { id text isDeleted editedAt attachments { name size } } }
    ... on MessageEdited { message { id text isDeleted editedAt attachments { name size } } }
    ... on MessageDeleted { message { id text isDeleted attachments { name } } }
  }
}
"""

SEND_WITH_FILES = """
mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id attachments { name } } }
"""

SECRET = "the launch code is 0000"
SECRET_FILE = "launch-plan.png"


async def stored_payloads() -> str:
    return json.dumps(await sync_to_async(list)(Event.objects.values_list("payload", flat=True)))


async def upload_file(user, name: str) -> dict:
    response = await AsyncClient().post(
        "/api/uploads/",
        {"file": upload(name, image_bytes(64, 48), "image/png")},
        headers={"Authorization": f"JWT {await sync_to_async(token_for)(user)}"},
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestReplayAfterDeletion:
    async def test_earlier_events_of_a_deleted_message_replay_as_tombstones(self, protocol, room, alice, bob, api):
        live = await connect(bob, protocol)
        op = await live.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(room_group(room.pk))  # live from here: nothing is sent before it starts
        uploaded = await upload_file(alice, SECRET_FILE)
        sent = (
            await api(
                SEND_WITH_FILES,
                {"input": {"roomId": rid(room), "text": SECRET, "attachmentIds": [uploaded["id"]]}},
                alice,
            )
        )["sendMessage"]
        await api(EDIT_MESSAGE, {"id": sent["id"], "text": SECRET + " (really)"}, alice)
        await api(SEND_MESSAGE, {"roomId": rid(room), "text": "unrelated"}, alice)
        added, _, _ = await events_of(live, op, 3)
        assert added["message"]["attachments"] == [{"name": SECRET_FILE, "size": uploaded["size"]}]
        stored = await sync_to_async(list)(Attachment.objects.values_list("file", "thumbnail"))
        await api(DELETE_MESSAGE, {"id": sent["id"]}, alice)
        [deleted] = await events_of(live, op, 1)
        await live.close()

        client = await connect(bob, protocol)
        before = encode_cursor({room.pk: added["seq"] - 1})
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room), "after": before})
        replayed = await events_of(client, op, 4)
        assert [e["__typename"] for e in replayed] == [
            "MessageAdded",
            "MessageEdited",
            "MessageAdded",
            "MessageDeleted",
        ]
        tombstone = {"id": sent["id"], "text": "", "isDeleted": True, "attachments": []}
        assert {k: replayed[0]["message"][k] for k in tombstone} == tombstone
        assert {k: replayed[1]["message"][k] for k in tombstone} == tombstone
        assert replayed[2]["message"]["text"] == "unrelated"
        assert replayed[3]["message"] == tombstone == deleted["message"]
        await client.close()

        payloads = await stored_payloads()
        assert SECRET not in payloads and SECRET_FILE not in payloads
        assert await sync_to_async(Attachment.objects.count)() == 0
        assert not any(default_storage.exists(name) for pair in stored for name in pair if name)

    async def test_text_replaced_by_an_edit_is_not_replayed(self, protocol, room, alice, bob, api):
        sent = (await api(SEND_MESSAGE, {"roomId": rid(room), "text": "draft: " + SECRET}, alice))["sendMessage"]
        await api(EDIT_MESSAGE, {"id": sent["id"], "text": "second draft"}, alice)
        await api(EDIT_MESSAGE, {"id": sent["id"], "text": "final"}, alice)

        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room), "after": encode_cursor({room.pk: 2})})
        replayed = await events_of(client, op, 3)
        assert [e["__typename"] for e in replayed] == ["MessageAdded", "MessageEdited", "MessageEdited"]
        assert [e["message"]["text"] for e in replayed] == ["final"] * 3
        assert len({e["message"]["editedAt"] for e in replayed}) == 1 and replayed[0]["message"]["editedAt"]
        assert all(e["message"]["isDeleted"] is False for e in replayed)
        await client.close()

        payloads = await stored_payloads()
        assert SECRET not in payloads and "second draft" not in payloads


class TestRedactionStaysInItsMessage:
    async def test_other_messages_and_a_refused_delete_keep_their_events(self, room, alice, bob, carol, agql, api):
        mine = (await api(SEND_MESSAGE, {"roomId": rid(room), "text": "keep me"}, alice))["sendMessage"]
        theirs = (await api(SEND_MESSAGE, {"roomId": rid(room), "text": "bob's words"}, bob))["sendMessage"]

        refused = await agql(DELETE_MESSAGE, {"id": mine["id"]}, user=bob)  # not his, not an admin
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        await api(DELETE_MESSAGE, {"id": theirs["id"]}, bob)

        payloads = await stored_payloads()
        assert "keep me" in payloads and "bob's words" not in payloads


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_replay_seen_before_the_deletion_is_not_served_again_after_it(protocol, room, alice, bob, api):
    """Renders are shared between subscribers of the same event, cursor and
    operation; the same resume repeated after the deletion renders the tombstone."""
    sent = (await api(SEND_MESSAGE, {"roomId": rid(room), "text": SECRET}, alice))["sendMessage"]
    resume = {"roomId": rid(room), "after": encode_cursor({room.pk: 2})}
    first = await connect(bob, protocol)
    op = await first.subscribe(ROOM_EVENTS, resume)
    [before] = await events_of(first, op, 1)
    assert before["message"]["text"] == SECRET
    await first.close()

    await api(DELETE_MESSAGE, {"id": sent["id"]}, alice)
    again = await connect(bob, protocol)
    op = await again.subscribe(ROOM_EVENTS, resume)
    added, deleted = await events_of(again, op, 2)
    assert added["message"]["text"] == "" and added["message"]["isDeleted"] is True
    assert deleted["__typename"] == "MessageDeleted"
    await again.close()
