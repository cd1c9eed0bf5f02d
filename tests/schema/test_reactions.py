"""Reactions over GraphQL: adding and removing (idempotent), grouping by emoji,
emoji validation, the per-message limit, members only, none on deleted messages."""

from __future__ import annotations

import pytest

from chat.models import Event, Reaction
from chat.services import reactions, rooms
from tests.chat_world import World, db_state, gid, last_event_id

pytestmark = pytest.mark.django_db

ADD = """
mutation Add($messageId: ID!, $emoji: String!) {
  addReaction(messageId: $messageId, emoji: $emoji) {
    id reactions { emoji count reactedByMe users { username } }
  }
}
"""
REMOVE = """
mutation Remove($messageId: ID!, $emoji: String!) {
  removeReaction(messageId: $messageId, emoji: $emoji) { id reactions { emoji count reactedByMe } }
}
"""
REACTIONS = """
query Reactions($id: ID!, $first: Int) {
  node(id: $id) { ... on Message { reactions { emoji count reactedByMe users(first: $first) { username } } } }
}
"""
DELETE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { id } }"


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "reaction": (1000, 60)}


def add(gql, user, message, emoji):
    return gql(ADD, {"messageId": gid("Message", message.pk), "emoji": emoji}, user=user)


def codes(body) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def test_reactions_group_by_emoji_in_first_use_order(gql, world: World):
    add(gql, world.member, world.message, "👍")
    add(gql, world.owner, world.message, "🎉")
    body = add(gql, world.admin, world.message, "👍")
    assert body["data"]["addReaction"]["reactions"] == [
        {"emoji": "👍", "count": 2, "reactedByMe": True, "users": [{"username": "mia"}, {"username": "adam"}]},
        {"emoji": "🎉", "count": 1, "reactedByMe": False, "users": [{"username": "olga"}]},
    ]
    seen_by_other = gql(REACTIONS, {"id": gid("Message", world.message.pk), "first": 1}, user=world.other_member)
    assert seen_by_other["data"]["node"]["reactions"] == [
        {"emoji": "👍", "count": 2, "reactedByMe": False, "users": [{"username": "mia"}]},
        {"emoji": "🎉", "count": 1, "reactedByMe": False, "users": [{"username": "olga"}]},
    ]


def test_adding_twice_changes_nothing_and_records_no_event(gql, world: World):
    add(gql, world.member, world.message, "👍")
    before, last = db_state(), last_event_id()
    body = add(gql, world.member, world.message, "👍")
    assert body["data"]["addReaction"]["reactions"][0]["count"] == 1
    assert db_state() == before and last_event_id() == last


def test_removing_what_is_not_there_changes_nothing_and_records_no_event(gql, world: World):
    add(gql, world.owner, world.message, "👍")
    before, last = db_state(), last_event_id()
    body = gql(REMOVE, {"messageId": gid("Message", world.message.pk), "emoji": "👍"}, user=world.member)
    assert body["data"]["removeReaction"]["reactions"] == [{"emoji": "👍", "count": 1, "reactedByMe": False}]
    assert db_state() == before and last_event_id() == last


def test_add_and_remove_record_one_event_each(gql, world: World):
    last = last_event_id()
    add(gql, world.member, world.message, "👍")
    body = gql(REMOVE, {"messageId": gid("Message", world.message.pk), "emoji": "👍"}, user=world.member)
    assert body["data"]["removeReaction"]["reactions"] == []
    stored = list(Event.objects.filter(pk__gt=last).order_by("pk"))
    assert [e.kind for e in stored] == ["ReactionAdded", "ReactionRemoved"]
    for event in stored:
        assert event.room_id == world.public.pk
        assert event.payload["emoji"] == "👍"
        assert event.payload["user"]["username"] == "mia"
        assert event.payload["message"]["id"] == world.message.pk


def test_the_same_emoji_written_two_ways_is_one_reaction(gql, world: World):
    add(gql, world.member, world.message, "\u2764")  # red heart without the emoji presentation selector
    body = add(gql, world.owner, world.message, "\u2764\ufe0f")
    assert body["data"]["addReaction"]["reactions"] == [
        {"emoji": "\u2764\ufe0f", "count": 2, "reactedByMe": True, "users": [{"username": "mia"}, {"username": "olga"}]}
    ]


@pytest.mark.parametrize("emoji", ["👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "#️⃣"])
def test_emoji_sequences_count_as_one_emoji(gql, world: World, emoji):
    body = add(gql, world.member, world.message, emoji)
    assert [g["emoji"] for g in body["data"]["addReaction"]["reactions"]] == [emoji]


@pytest.mark.parametrize("emoji", ["", " ", "a", "👍👍", ":thumbsup:", "+1", "👍 ok", "x" * 100, "\u200d"])
def test_anything_but_one_emoji_is_bad_user_input(gql, world: World, emoji):
    before = db_state()
    body = add(gql, world.member, world.message, emoji)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["fields"] == {"emoji": ["Not a single emoji."]}
    assert body["data"] is None
    assert db_state() == before


def test_at_most_20_different_emoji_per_message(gql, world: World):
    palette = ["😀", "😃", "😄", "😁", "😆", "😅", "😂", "🤣", "😊", "😇", "🙂", "🙃", "😉", "😌", "😍", "🥰", "😘"]
    palette += ["😗", "😙", "😚"]
    for emoji in palette:
        reactions.add_reaction(world.owner, world.message.pk, emoji)
    before = db_state()
    body = add(gql, world.member, world.message, "🤯")
    assert codes(body) == ["BAD_USER_INPUT"] and "at most 20" in body["errors"][0]["message"]
    assert db_state() == before
    # Joining an emoji that is already there still works.
    body = add(gql, world.member, world.message, "😀")
    assert body["data"]["addReaction"]["reactions"][0] == {
        "emoji": "😀",
        "count": 2,
        "reactedByMe": True,
        "users": [{"username": "olga"}, {"username": "mia"}],
    }
    assert len(body["data"]["addReaction"]["reactions"]) == 20


def test_members_only(gql, world: World):
    before = db_state()
    for user in (world.outsider, world.staff):
        body = add(gql, user, world.message, "👍")
        assert codes(body) == ["NOT_FOUND"] and body["data"] is None
        body = gql(REMOVE, {"messageId": gid("Message", world.message.pk), "emoji": "👍"}, user=user)
        assert codes(body) == ["NOT_FOUND"]
    body = gql(REACTIONS, {"id": gid("Message", world.message.pk)}, user=world.outsider)
    assert body == {"data": {"node": None}}
    assert db_state() == before


def test_none_on_deleted_messages_and_deleting_removes_them(gql, world: World):
    add(gql, world.member, world.message, "👍")
    add(gql, world.owner, world.message, "🎉")
    gql(DELETE, {"id": gid("Message", world.message.pk)}, user=world.member)
    assert not Reaction.objects.filter(message=world.message).exists()
    before = db_state()
    for mutation in (ADD, REMOVE):
        body = gql(mutation, {"messageId": gid("Message", world.message.pk), "emoji": "👍"}, user=world.owner)
        assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["message"] == "This message was deleted."
    assert gql(REACTIONS, {"id": gid("Message", world.message.pk)}, user=world.owner) == {
        "data": {"node": {"reactions": []}}
    }
    assert db_state() == before


def test_users_first_is_bounded(gql, world: World):
    add(gql, world.member, world.message, "👍")
    body = gql(REACTIONS, {"id": gid("Message", world.message.pk), "first": 101}, user=world.member)
    assert codes(body) == ["BAD_USER_INPUT"]
    body = gql(REACTIONS, {"id": gid("Message", world.message.pk), "first": 0}, user=world.member)
    assert body["data"]["node"]["reactions"][0]["users"] == []


def test_rate_limited(gql, world: World, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "reaction": (2, 60)}
    add(gql, world.member, world.message, "👍")
    add(gql, world.member, world.message, "🎉")
    before = db_state()
    body = add(gql, world.member, world.message, "😀")
    assert codes(body) == ["RATE_LIMITED"]
    assert db_state() == before


def test_reactions_of_deactivated_accounts_do_not_count(gql, world: World):
    add(gql, world.member, world.message, "👍")
    add(gql, world.owner, world.message, "👍")
    world.owner.is_active = False
    world.owner.save(update_fields=["is_active"])
    body = gql(REACTIONS, {"id": gid("Message", world.message.pk)}, user=world.member)
    assert body["data"]["node"]["reactions"] == [
        {"emoji": "👍", "count": 1, "reactedByMe": True, "users": [{"username": "mia"}]}
    ]


def test_a_member_who_left_can_no_longer_react(gql, world: World):
    rooms.leave_room(world.other_member, world.public.pk)
    before = db_state()
    body = add(gql, world.other_member, world.message, "👍")
    assert codes(body) == ["NOT_FOUND"]
    assert db_state() == before
