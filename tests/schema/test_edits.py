"""Edit history over GraphQL: each replaced text, oldest first, for those who may
see the message; gone with the message."""

from __future__ import annotations

import pytest

from chat.models import MessageEdit
from chat.services import messages, rooms
from tests.chat_world import World, gid

pytestmark = pytest.mark.django_db

EDIT = "mutation Edit($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { text edits { text editedAt } } }"
EDITS = "query Edits($id: ID!) { node(id: $id) { ... on Message { text editedAt edits { text editedAt } } } }"
DELETE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { text edits { text } } }"


def test_each_edit_keeps_the_text_it_replaced_oldest_first(gql, world: World):
    message_id = gid("Message", world.message.pk)
    gql(EDIT, {"id": message_id, "text": "hello lobby!"}, user=world.member)
    body = gql(EDIT, {"id": message_id, "text": "hello, lobby!"}, user=world.member)
    answer = body["data"]["editMessage"]
    assert answer["text"] == "hello, lobby!"
    assert [e["text"] for e in answer["edits"]] == ["hello lobby", "hello lobby!"]
    first, second = answer["edits"]
    assert first["editedAt"] < second["editedAt"]
    seen = gql(EDITS, {"id": message_id}, user=world.owner)["data"]["node"]
    assert seen["edits"] == answer["edits"]
    assert seen["editedAt"] == second["editedAt"]


def test_an_edit_that_changes_nothing_adds_no_history(gql, world: World):
    message_id = gid("Message", world.message.pk)
    body = gql(EDIT, {"id": message_id, "text": "  hello lobby "}, user=world.member)
    assert body["data"]["editMessage"]["edits"] == []
    assert not MessageEdit.objects.exists()


def test_a_refused_edit_adds_no_history(gql, world: World):
    body = gql(EDIT, {"id": gid("Message", world.message.pk), "text": "hijacked"}, user=world.owner)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = gql(EDIT, {"id": gid("Message", world.message.pk), "text": ""}, user=world.member)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert not MessageEdit.objects.exists()


def test_history_is_visible_only_to_those_who_see_the_message(gql, world: World):
    messages.edit_message(world.member, world.private_message.pk, "psst!")
    message_id = gid("Message", world.private_message.pk)
    assert gql(EDITS, {"id": message_id}, user=world.admin)["data"]["node"]["edits"][0]["text"] == "psst"
    for user in (world.outsider, world.staff, world.other_member):
        assert gql(EDITS, {"id": message_id}, user=user) == {"data": {"node": None}}
    rooms.leave_room(world.admin, world.private.pk)
    assert gql(EDITS, {"id": message_id}, user=world.admin) == {"data": {"node": None}}


def test_deleting_the_message_deletes_its_history(gql, world: World):
    messages.edit_message(world.member, world.message.pk, "second version")
    messages.edit_message(world.member, world.message.pk, "third version")
    body = gql(DELETE, {"id": gid("Message", world.message.pk)}, user=world.owner)
    assert body["data"]["deleteMessage"] == {"text": "", "edits": []}
    assert not MessageEdit.objects.filter(message=world.message).exists()
    assert gql(EDITS, {"id": gid("Message", world.message.pk)}, user=world.member)["data"]["node"]["edits"] == []
