"""Moderation under races: real threads, real transactions (SQLite here, Postgres
in services mode). Two admins banning and unbanning the same user at once
leave one consistent state: a ban never coexists with a membership, the log
has one MemberLeft per removal and no gap."""

from __future__ import annotations

import itertools

import pytest

from chat.errors import Forbidden
from chat.models import Ban, Event, Invite, Membership, Room
from chat.services import moderation, rooms
from tests.chat.test_concurrency import race
from tests.chat_world import fast_user

pytestmark = pytest.mark.django_db(transaction=True)


def assert_consistent(room: Room, user) -> None:
    banned = Ban.objects.filter(room=room, user=user).count()
    member = Membership.objects.filter(room=room, user=user).exists()
    assert banned <= 1
    assert not (banned and member), "a banned user is still a member"
    seqs = list(Event.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert Room.objects.get(pk=room.pk).last_seq == len(seqs)
    # Every join of the user is followed by exactly one leave, or they are in the room.
    kinds = [
        e.kind
        for e in Event.objects.filter(room=room, kind__in=["MemberJoined", "MemberLeft"]).order_by("seq")
        if e.payload["user"]["id"] == user.pk
    ]
    assert all(a != b for a, b in itertools.pairwise(kinds)), kinds
    assert (kinds[-1] == "MemberJoined") == member


@pytest.fixture
def lobby():
    owner, admin, target = fast_user("olga"), fast_user("adam"), fast_user("tom")
    room = rooms.create_room(owner, "Lobby", member_ids=[admin.pk, target.pk])
    Membership.objects.filter(room=room, user=admin).update(role=Membership.Role.ADMIN)
    return room, owner, admin, target


def test_two_admins_banning_and_unbanning_at_once_leave_one_state(lobby):
    room, owner, admin, target = lobby
    for _ in range(3):
        results = race(
            lambda: moderation.ban_member(owner, room.pk, target.pk, "by owner"),
            lambda: moderation.unban_member(admin, room.pk, target.pk),
            lambda: moderation.ban_member(admin, room.pk, target.pk, "by admin"),
            lambda: moderation.unban_member(owner, room.pk, target.pk),
        )
        assert all(isinstance(r, Room) for r in results), results
        assert_consistent(room, target)
        assert not Membership.objects.filter(room=room, user=target).exists()  # unbanning adds nobody back
        # Back in for the next round, if the last word was an unban.
        moderation.unban_member(owner, room.pk, target.pk)
        rooms.join_room(target, room.pk)
    banned_events = Event.objects.filter(room=room, kind="MemberLeft", payload__reason="banned").count()
    assert banned_events == 3


def test_a_ban_racing_joins_and_invites_never_leaves_the_user_inside(lobby):
    room, owner, admin, target = lobby
    rooms.leave_room(target, room.pk)
    invite = moderation.create_invite(owner, room.pk)
    for _ in range(3):
        results = race(
            lambda: moderation.ban_member(admin, room.pk, target.pk),
            lambda: rooms.join_room(target, room.pk),
            lambda: moderation.join_by_invite(target, invite.code),
        )
        assert isinstance(results[0], Room), results
        assert all(isinstance(r, (Room, Forbidden)) for r in results[1:]), results
        assert_consistent(room, target)
        assert Ban.objects.filter(room=room, user=target).exists()
        assert not Membership.objects.filter(room=room, user=target).exists()
        moderation.unban_member(owner, room.pk, target.pk)
    assert Invite.objects.get().uses <= 3
