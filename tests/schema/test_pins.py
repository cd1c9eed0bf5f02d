"""Pins over GraphQL: who may pin, the pinned list (newest pin first), the limit,
idempotence, and deleted messages."""

from __future__ import annotations

import pytest

from chat.models import Event, Message
from chat.services import messages, pins, rooms
from tests.chat_world import World, db_state, gid, last_event_id

pytestmark = pytest.mark.django_db

PIN = "mutation Pin($id: ID!) { pinMessage(id: $id) { id pinnedAt pinnedBy { username } } }"
UNPIN = "mutation Unpin($id: ID!) { unpinMessage(id: $id) { id pinnedAt pinnedBy { username } } }"
PINNED = """
query Pinned($id: ID!, $first: Int, $after: String) {
  room(id: $id) {
    pinnedMessages(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { text pinnedBy { username } } }
    }
  }
}
"""
DELETE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { id } }"


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "send_message": (1000, 10), "pin": (1000, 60)}


def codes(body) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def pinned_texts(gql, user, room, **page) -> list[str]:
    body = gql(PINNED, {"id": gid("Room", room.pk), **page}, user=user)
    return [e["node"]["text"] for e in body["data"]["room"]["pinnedMessages"]["edges"]]


def test_owner_and_admins_pin_newest_pin_first(gql, world: World):
    body = gql(PIN, {"id": gid("Message", world.message.pk)}, user=world.admin)
    assert body["data"]["pinMessage"]["pinnedBy"] == {"username": "adam"}
    assert body["data"]["pinMessage"]["pinnedAt"] is not None
    gql(PIN, {"id": gid("Message", world.owner_message.pk)}, user=world.owner)
    assert pinned_texts(gql, world.member, world.public) == ["welcome", "hello lobby"]
    body = gql(PINNED, {"id": gid("Room", world.public.pk)}, user=world.member)
    assert [e["node"]["pinnedBy"] for e in body["data"]["room"]["pinnedMessages"]["edges"]] == [
        {"username": "olga"},
        {"username": "adam"},
    ]


def test_members_of_group_rooms_may_not_pin(gql, world: World):
    pins.pin_message(world.owner, world.owner_message.pk)
    before = db_state()
    body = gql(PIN, {"id": gid("Message", world.message.pk)}, user=world.member)
    assert codes(body) == ["FORBIDDEN"] and body["data"] is None
    body = gql(UNPIN, {"id": gid("Message", world.owner_message.pk)}, user=world.member)
    assert codes(body) == ["FORBIDDEN"]
    assert db_state() == before


def test_either_member_of_a_direct_chat_pins(gql, world: World):
    direct = rooms.start_direct_chat(world.member, world.other_member.pk)
    message = messages.send_message(world.other_member, direct.pk, "remember this")
    body = gql(PIN, {"id": gid("Message", message.pk)}, user=world.member)
    assert body["data"]["pinMessage"]["pinnedBy"] == {"username": "mia"}
    body = gql(UNPIN, {"id": gid("Message", message.pk)}, user=world.other_member)
    assert body["data"]["unpinMessage"] == {"id": gid("Message", message.pk), "pinnedAt": None, "pinnedBy": None}


def test_pinning_twice_or_unpinning_what_is_not_pinned_changes_nothing(gql, world: World):
    gql(PIN, {"id": gid("Message", world.message.pk)}, user=world.owner)
    before, last = db_state(), last_event_id()
    gql(PIN, {"id": gid("Message", world.message.pk)}, user=world.admin)
    body = gql(UNPIN, {"id": gid("Message", world.owner_message.pk)}, user=world.owner)
    assert body["data"]["unpinMessage"]["pinnedAt"] is None
    assert db_state() == before and last_event_id() == last
    gql(UNPIN, {"id": gid("Message", world.message.pk)}, user=world.admin)
    stored = list(Event.objects.filter(room=world.public).order_by("-seq")[:2])
    assert [e.kind for e in reversed(stored)] == ["MessagePinned", "MessageUnpinned"]
    assert [e.payload["by"]["username"] for e in reversed(stored)] == ["olga", "adam"]
    assert pinned_texts(gql, world.member, world.public) == []


def test_at_most_50_pins_per_room_and_pages(gql, world: World):
    ids = [messages.send_message(world.owner, world.public.pk, f"m{i:02}").pk for i in range(51)]
    for pk in ids[:50]:
        pins.pin_message(world.owner, pk)
    before = db_state()
    body = gql(PIN, {"id": gid("Message", ids[50])}, user=world.owner)
    assert codes(body) == ["BAD_USER_INPUT"] and "at most 50" in body["errors"][0]["message"]
    assert db_state() == before
    first = gql(PINNED, {"id": gid("Room", world.public.pk), "first": 20}, user=world.member)
    page = first["data"]["room"]["pinnedMessages"]
    assert [e["node"]["text"] for e in page["edges"]] == [f"m{i:02}" for i in range(49, 29, -1)]
    assert page["pageInfo"]["hasNextPage"] is True
    assert pinned_texts(gql, world.member, world.public, first=20, after=page["pageInfo"]["endCursor"]) == [
        f"m{i:02}" for i in range(29, 9, -1)
    ]
    # Unpinning one makes room for another.
    pins.unpin_message(world.owner, ids[0])
    assert gql(PIN, {"id": gid("Message", ids[50])}, user=world.owner)["data"]["pinMessage"]["pinnedAt"]


def test_deleted_messages_are_not_pinned_and_leave_the_list(gql, world: World):
    pins.pin_message(world.owner, world.message.pk)
    gql(DELETE, {"id": gid("Message", world.message.pk)}, user=world.member)
    assert Message.objects.filter(pk=world.message.pk, pinned_at__isnull=True, pinned_by__isnull=True).exists()
    assert pinned_texts(gql, world.owner, world.public) == []
    before = db_state()
    body = gql(PIN, {"id": gid("Message", world.message.pk)}, user=world.owner)
    assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["message"] == "This message was deleted."
    assert db_state() == before


def test_outsiders_and_staff_neither_pin_nor_see_pins(gql, world: World):
    pins.pin_message(world.owner, world.owner_message.pk)
    before = db_state()
    for user in (world.outsider, world.staff):
        assert codes(gql(PIN, {"id": gid("Message", world.message.pk)}, user=user)) == ["NOT_FOUND"]
        assert codes(gql(UNPIN, {"id": gid("Message", world.owner_message.pk)}, user=user)) == ["NOT_FOUND"]
        # The public room is visible to them; its pinned messages, like its history, are not.
        assert pinned_texts(gql, user, world.public) == []
    assert db_state() == before


def test_rate_limited(gql, world: World, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "pin": (1, 60)}
    gql(PIN, {"id": gid("Message", world.message.pk)}, user=world.owner)
    before = db_state()
    body = gql(PIN, {"id": gid("Message", world.owner_message.pk)}, user=world.owner)
    assert codes(body) == ["RATE_LIMITED"]
    assert db_state() == before
