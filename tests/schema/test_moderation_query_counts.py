"""Moderation lists cost a fixed number of SQL queries, whatever the number of rows.

Counts include the one query that loads the caller from the token.
"""

from __future__ import annotations

import pytest

from chat.services import messages, moderation, rooms
from tests.chat_world import fast_user, gid

pytestmark = pytest.mark.django_db

BANS_AND_REPORTS = """
query Moderation($id: ID!) {
  room(id: $id) {
    bans(first: 100) { totalCount edges { node { user { username } by { username } reason createdAt } } }
    reports(first: 100) { edges { node { reason comment text reporter { username } message { id text } } } }
    invites { code uses maxUses expiresAt revoked }
  }
}
"""
MEMBERS = "query Members($id: ID!) { room(id: $id) { members(first: 100) { user { username } isMuted mutedUntil } } }"
HISTORY = """
query History($roomId: ID!) {
  messages(roomId: $roomId, first: 100) { edges { node { text sender { username } senderBlocked } } }
}
"""
BLOCKED = "query Blocked { me { blockedUsers { username displayName } } }"

# Caller, room access, room, moderator check for each of bans, reports and invites (membership),
# bans page, their users and moderators, bans total, reports page, reporters, messages, invites.
MODERATION_QUERIES = 14
# Caller, room access, room, members page (with the mute annotations), their users.
MEMBERS_QUERIES = 5
# Caller, room access with the membership, messages page (senderBlocked annotated), senders.
HISTORY_QUERIES = 4
# Caller (also `me`), blocks with their users.
BLOCKED_QUERIES = 2


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    limits = {name: (10000, 60) for name in ("send_message", "create_room", "report", "invite", "manage_room")}
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, **limits}


def moderated_room(n: int):
    owner = fast_user("owner")
    people = [fast_user(f"person{i}") for i in range(n)]
    room = rooms.create_room(owner, "busy", member_ids=[p.pk for p in people])
    for i, person in enumerate(people):
        message = messages.send_message(person, room.pk, f"message {i}")
        moderation.report_message(owner, message.pk, "SPAM", f"report {i}")
        moderation.create_invite(owner, room.pk, max_uses=i + 1)
        if i % 2:
            moderation.mute_member(owner, room.pk, person.pk)
            moderation.block_user(owner, person.pk)
        else:
            moderation.ban_member(owner, room.pk, person.pk, f"reason {i}")
    return owner, room


@pytest.mark.parametrize("rows", [4, 20])
def test_bans_reports_and_invites(gql, django_assert_num_queries, rows):
    owner, room = moderated_room(rows)
    with django_assert_num_queries(MODERATION_QUERIES):
        body = gql(BANS_AND_REPORTS, {"id": gid("Room", room.pk)}, user=owner)
    data = body["data"]["room"]
    assert data["bans"]["totalCount"] == rows // 2
    assert len(data["reports"]["edges"]) == rows
    assert len(data["invites"]) == rows


@pytest.mark.parametrize("rows", [4, 20])
def test_members_with_mutes(gql, django_assert_num_queries, rows):
    owner, room = moderated_room(rows)
    with django_assert_num_queries(MEMBERS_QUERIES):
        body = gql(MEMBERS, {"id": gid("Room", room.pk)}, user=owner)
    assert sum(m["isMuted"] for m in body["data"]["room"]["members"]) == rows // 2


@pytest.mark.parametrize("rows", [4, 20])
def test_history_with_sender_blocked(gql, django_assert_num_queries, rows):
    owner, room = moderated_room(rows)
    with django_assert_num_queries(HISTORY_QUERIES):
        body = gql(HISTORY, {"roomId": gid("Room", room.pk)}, user=owner)
    assert sum(e["node"]["senderBlocked"] for e in body["data"]["messages"]["edges"]) == rows // 2


@pytest.mark.parametrize("rows", [4, 20])
def test_blocked_users(gql, django_assert_num_queries, rows):
    owner, _ = moderated_room(rows)
    with django_assert_num_queries(BLOCKED_QUERIES):
        body = gql(BLOCKED, user=owner)
    assert len(body["data"]["me"]["blockedUsers"]) == rows // 2
