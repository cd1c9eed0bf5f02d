"""Room services: the rules, the exact events each change records, the notifications it publishes."""

from __future__ import annotations

import pytest

from chat import events
from chat.errors import BadUserInput, Forbidden, NotFound, RateLimited, RoomFull
from chat.models import Event, Membership, Room
from chat.services import rooms
from tests.chat_world import (
    World,
    db_state,
    events_after,
    fast_user,
    last_event_id,
    user_snap,
)

pytestmark = pytest.mark.django_db


def room_snap(room: Room) -> dict:
    return {"id": room.pk, "name": room.name, "topic": room.topic, "kind": room.kind, "is_private": room.is_private}


def notifications(published) -> list[tuple[list[str], str, int, int]]:
    """(groups, kind, room id, by user id) of the published notifications."""
    return [
        (groups, m["kind"], m["room"]["id"], m["by"]["id"])
        for groups, m in published
        if m["type"] == events.NOTIFICATION_TYPE
    ]


class TestCreateRoom:
    def test_creator_owns_and_initial_members_join_with_events_and_notifications(
        self, django_capture_on_commit_callbacks, published
    ):
        alice, bob, carol = fast_user("alice"), fast_user("bob"), fast_user("carol")
        with django_capture_on_commit_callbacks(execute=True):
            room = rooms.create_room(
                alice, "  Lobby ", topic="hi", member_ids=[bob.pk, str(carol.pk), bob.pk, alice.pk]
            )
        assert (room.name, room.topic, room.kind, room.is_private, room.created_by) == (
            "Lobby",
            "hi",
            "group",
            False,
            alice,
        )
        assert list(
            Membership.objects.filter(room=room).order_by("pk").values_list("user__username", "role", "joined_seq")
        ) == [
            ("alice", "owner", 1),
            ("bob", "member", 2),
            ("carol", "member", 3),
        ]
        assert events_after(0) == [
            (room.pk, "MemberJoined", 1, {"user": user_snap(alice), "role": "owner", "by": None}),
            (room.pk, "MemberJoined", 2, {"user": user_snap(bob), "role": "member", "by": user_snap(alice)}),
            (room.pk, "MemberJoined", 3, {"user": user_snap(carol), "role": "member", "by": user_snap(alice)}),
        ]
        assert Room.objects.get(pk=room.pk).last_seq == 3
        # Each event goes to the room group and the joined user's own group.
        assert [groups for groups, m in published if m["type"] == events.EVENT_TYPE] == [
            [f"room.{room.pk}", f"user.{alice.pk}"],
            [f"room.{room.pk}", f"user.{bob.pk}"],
            [f"room.{room.pk}", f"user.{carol.pk}"],
        ]
        assert notifications(published) == [
            ([f"user.{bob.pk}"], "ADDED_TO_ROOM", room.pk, alice.pk),
            ([f"user.{carol.pk}"], "ADDED_TO_ROOM", room.pk, alice.pk),
        ]

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"name": "   "}, "name"),
            ({"name": "x" * 101}, "name"),
            ({"name": "ok", "topic": "t" * 501}, "topic"),
            ({"name": "ok", "member_ids": [999999]}, "memberIds"),
            ({"name": "ok", "member_ids": ["abc"]}, "memberIds"),
        ],
    )
    def test_bad_input_changes_nothing(self, kwargs, field):
        alice = fast_user("alice")
        before = db_state()
        with pytest.raises(BadUserInput) as error:
            rooms.create_room(alice, **kwargs)
        assert list(error.value.extensions["fields"]) == [field]
        assert db_state() == before

    def test_staff_only_setting(self, settings):
        settings.ROOM_CREATION_STAFF_ONLY = True
        alice, staff = fast_user("alice"), fast_user("sam", is_staff=True)
        with pytest.raises(Forbidden):
            rooms.create_room(alice, "Mine")
        assert Room.objects.count() == 0
        assert rooms.create_room(staff, "Staff room").name == "Staff room"

    def test_too_many_initial_members_is_room_full(self, settings):
        settings.MAX_USERS_IN_ROOM = 2
        alice, bob, carol = fast_user("alice"), fast_user("bob"), fast_user("carol")
        with pytest.raises(RoomFull):
            rooms.create_room(alice, "Big", member_ids=[bob.pk, carol.pk])
        assert Room.objects.count() == 0 and Event.objects.count() == 0

    def test_rate_limited(self, settings):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "create_room": (2, 60)}
        alice = fast_user("alice")
        rooms.create_room(alice, "one")
        rooms.create_room(alice, "two")
        with pytest.raises(RateLimited):
            rooms.create_room(alice, "three")
        assert list(Room.objects.order_by("pk").values_list("name", flat=True)) == ["one", "two"]


class TestUpdateAndDelete:
    def test_update_records_room_updated(self, world: World):
        mark = last_event_id()
        room = rooms.update_room(world.admin, world.public.pk, name="Hall", topic="", is_private=True)
        assert (room.name, room.topic, room.is_private) == ("Hall", "", True)
        assert events_after(mark) == [(world.public.pk, "RoomUpdated", room.last_seq, {"room": room_snap(room)})]

    def test_update_without_a_change_records_nothing(self, world: World):
        before = db_state()
        rooms.update_room(world.owner, world.public.pk, name="Lobby", topic=None)
        assert db_state() == before

    def test_direct_chats_cannot_be_renamed(self, world: World):
        direct = rooms.start_direct_chat(world.member, world.outsider.pk)
        before = db_state()
        with pytest.raises(Forbidden):
            rooms.update_room(world.staff, direct.pk, name="x")
        assert db_state() == before

    def test_delete_tells_every_member_and_hides_the_room(
        self, world: World, django_capture_on_commit_callbacks, published
    ):
        mark = last_event_id()
        with django_capture_on_commit_callbacks(execute=True):
            rooms.delete_room(world.owner, world.public.pk)
        seq = Room.objects.get(pk=world.public.pk).last_seq
        assert events_after(mark) == [(world.public.pk, "RoomDeleted", seq, {"room": room_snap(world.public)})]
        member_groups = sorted(f"user.{u.pk}" for u in (world.owner, world.admin, world.member, world.other_member))
        assert published[-1][0][0] == f"room.{world.public.pk}"
        assert sorted(published[-1][0][1:]) == member_groups
        with pytest.raises(NotFound):
            rooms.join_room(world.outsider, world.public.pk)

    def test_deleting_a_direct_chat_frees_the_pair(self, world: World):
        first = rooms.start_direct_chat(world.member, world.outsider.pk)
        rooms.delete_room(world.staff, first.pk)
        second = rooms.start_direct_chat(world.outsider, world.member.pk)
        assert second.pk != first.pk


class TestJoinAndLeave:
    def test_join_records_member_joined_with_joined_seq(self, world: World):
        mark = last_event_id()
        rooms.join_room(world.outsider, world.public.pk)
        membership = Membership.objects.get(room=world.public, user=world.outsider)
        assert membership.role == "member"
        assert events_after(mark) == [
            (
                world.public.pk,
                "MemberJoined",
                membership.joined_seq,
                {"user": user_snap(world.outsider), "role": "member", "by": None},
            )
        ]

    def test_joining_twice_changes_nothing(self, world: World):
        before = db_state()
        rooms.join_room(world.member, world.public.pk)
        assert db_state() == before

    def test_full_room(self, world: World, settings):
        settings.MAX_USERS_IN_ROOM = 4  # the lobby has 4 members
        before = db_state()
        with pytest.raises(RoomFull):
            rooms.join_room(world.outsider, world.public.pk)
        assert db_state() == before

    def test_private_and_direct_rooms_cannot_be_joined(self, world: World):
        direct = rooms.start_direct_chat(world.member, world.admin.pk)
        before = db_state()
        with pytest.raises(NotFound):
            rooms.join_room(world.outsider, world.private.pk)
        with pytest.raises(NotFound):
            rooms.join_room(world.outsider, direct.pk)
        assert db_state() == before

    def test_leave_records_member_left(self, world: World):
        mark = last_event_id()
        rooms.leave_room(world.member, world.public.pk)
        seq = Room.objects.get(pk=world.public.pk).last_seq
        assert events_after(mark) == [
            (world.public.pk, "MemberLeft", seq, {"user": user_snap(world.member), "reason": "left", "by": None})
        ]
        assert not Membership.objects.filter(room=world.public, user=world.member).exists()

    def test_owner_who_leaves_hands_over_to_the_longest_standing_admin(self, world: World):
        rooms.leave_room(world.owner, world.public.pk)
        assert Membership.objects.get(room=world.public, user=world.admin).role == "owner"

    def test_without_admins_the_longest_standing_member_inherits(self, world: World):
        Membership.objects.filter(user=world.admin).update(role="member")
        rooms.leave_room(world.owner, world.public.pk)
        assert dict(Membership.objects.filter(room=world.public).values_list("user__username", "role")) == {
            "adam": "owner",
            "mia": "member",
            "max": "member",
        }

    def test_the_last_one_out_leaves_an_empty_room(self, make_user):
        alice = fast_user("alice")
        room = rooms.create_room(alice, "Solo")
        rooms.leave_room(alice, room.pk)
        assert Room.objects.filter(pk=room.pk, deleted_at__isnull=True).exists()
        assert Membership.objects.filter(room=room).count() == 0


class TestMembers:
    def test_add_member_records_joined_by_and_notifies(
        self, world: World, django_capture_on_commit_callbacks, published
    ):
        mark = last_event_id()
        with django_capture_on_commit_callbacks(execute=True):
            rooms.add_member(world.admin, world.private.pk, world.outsider.pk)
        membership = Membership.objects.get(room=world.private, user=world.outsider)
        assert events_after(mark) == [
            (
                world.private.pk,
                "MemberJoined",
                membership.joined_seq,
                {"user": user_snap(world.outsider), "role": "member", "by": user_snap(world.admin)},
            )
        ]
        assert notifications(published) == [
            ([f"user.{world.outsider.pk}"], "ADDED_TO_ROOM", world.private.pk, world.admin.pk)
        ]
        assert published[0][0] == [f"room.{world.private.pk}", f"user.{world.outsider.pk}"]

    def test_add_unknown_user_is_not_found(self, world: World):
        before = db_state()
        with pytest.raises(NotFound):
            rooms.add_member(world.owner, world.private.pk, 987654)
        assert db_state() == before

    def test_remove_member_records_removed_by(self, world: World):
        mark = last_event_id()
        rooms.remove_member(world.owner, world.public.pk, world.admin.pk)
        seq = Room.objects.get(pk=world.public.pk).last_seq
        assert events_after(mark) == [
            (
                world.public.pk,
                "MemberLeft",
                seq,
                {"user": user_snap(world.admin), "reason": "removed", "by": user_snap(world.owner)},
            )
        ]

    def test_admins_cannot_remove_admins(self, world: World):
        Membership.objects.filter(room=world.public, user=world.member).update(role="admin")
        before = db_state()
        with pytest.raises(Forbidden):
            rooms.remove_member(world.admin, world.public.pk, world.member.pk)
        assert db_state() == before

    def test_removing_a_non_member_is_not_found(self, world: World):
        before = db_state()
        with pytest.raises(NotFound):
            rooms.remove_member(world.owner, world.public.pk, world.outsider.pk)
        assert db_state() == before


class TestDirectChats:
    def test_start_creates_one_room_for_the_pair_with_two_joins(self, django_capture_on_commit_callbacks, published):
        alice, bob = fast_user("alice"), fast_user("bob")
        with django_capture_on_commit_callbacks(execute=True):
            room = rooms.start_direct_chat(alice, bob.pk)
        assert (room.kind, room.is_private, room.direct_key, room.name) == (
            "direct",
            True,
            f"{alice.pk}:{bob.pk}",
            "alice, bob",
        )
        assert events_after(0) == [
            (room.pk, "MemberJoined", 1, {"user": user_snap(alice), "role": "member", "by": None}),
            (room.pk, "MemberJoined", 2, {"user": user_snap(bob), "role": "member", "by": user_snap(alice)}),
        ]
        assert list(Membership.objects.filter(room=room).order_by("pk").values_list("user_id", "joined_seq")) == [
            (alice.pk, 1),
            (bob.pk, 2),
        ]
        assert notifications(published) == [([f"user.{bob.pk}"], "DIRECT_CHAT_STARTED", room.pk, alice.pk)]
        before = db_state()
        assert rooms.start_direct_chat(bob, alice.pk) == room
        assert db_state() == before

    def test_with_oneself_or_nobody(self):
        alice = fast_user("alice")
        with pytest.raises(BadUserInput):
            rooms.start_direct_chat(alice, alice.pk)
        with pytest.raises(NotFound):
            rooms.start_direct_chat(alice, 424242)
        with pytest.raises(NotFound):
            rooms.start_direct_chat(alice, fast_user("gone", is_active=False).pk)
        assert Room.objects.count() == 0

    def test_nobody_else_can_be_added_and_members_cannot_leave(self):
        alice, bob, carol = fast_user("alice"), fast_user("bob"), fast_user("carol")
        room = rooms.start_direct_chat(alice, bob.pk)
        before = db_state()
        with pytest.raises(Forbidden):
            rooms.add_member(fast_user("sam", is_staff=True), room.pk, carol.pk)
        with pytest.raises(Forbidden):
            rooms.leave_room(alice, room.pk)
        assert db_state()["memberships"] == before["memberships"]


class TestMemberRoles:
    def test_owner_makes_a_member_admin_and_back(self, world: World):
        mark = last_event_id()
        rooms.set_member_role(world.owner, world.public.pk, world.member.pk, "admin")
        rooms.set_member_role(world.owner, world.public.pk, world.member.pk, "member")
        seq = Room.objects.get(pk=world.public.pk).last_seq
        change = {"user": user_snap(world.member), "by": user_snap(world.owner)}
        assert events_after(mark) == [
            (world.public.pk, "MemberRoleChanged", seq - 1, {**change, "role": "admin"}),
            (world.public.pk, "MemberRoleChanged", seq, {**change, "role": "member"}),
        ]
        assert Membership.objects.get(room=world.public, user=world.member).role == "member"

    def test_staff_demote_an_admin(self, world: World):
        mark = last_event_id()
        rooms.set_member_role(world.staff, world.private.pk, world.admin.pk, "member")
        seq = Room.objects.get(pk=world.private.pk).last_seq
        assert events_after(mark) == [
            (
                world.private.pk,
                "MemberRoleChanged",
                seq,
                {"user": user_snap(world.admin), "role": "member", "by": user_snap(world.staff)},
            )
        ]

    def test_handover_makes_the_previous_owner_admin(self, world: World):
        mark = last_event_id()
        rooms.set_member_role(world.owner, world.public.pk, world.member.pk, "owner")
        seq = Room.objects.get(pk=world.public.pk).last_seq
        assert dict(Membership.objects.filter(room=world.public).values_list("user__username", "role")) == {
            "olga": "admin",
            "adam": "admin",
            "mia": "owner",
            "max": "member",
        }
        assert events_after(mark) == [
            (
                world.public.pk,
                "MemberRoleChanged",
                seq - 1,
                {"user": user_snap(world.member), "role": "owner", "by": user_snap(world.owner)},
            ),
            (
                world.public.pk,
                "MemberRoleChanged",
                seq,
                {"user": user_snap(world.owner), "role": "admin", "by": user_snap(world.owner)},
            ),
        ]

    def test_the_same_role_again_changes_nothing(self, world: World):
        before = db_state()
        rooms.set_member_role(world.owner, world.public.pk, world.admin.pk, "admin")
        assert db_state() == before

    @pytest.mark.parametrize(
        ("actor", "target", "role", "error"),
        [
            ("admin", "member", "admin", Forbidden),  # admins do not change roles
            ("member", "other_member", "admin", Forbidden),
            ("outsider", "member", "admin", Forbidden),  # public room, not a member
            ("staff", "member", "owner", Forbidden),  # only the owner hands over
            ("staff", "owner", "admin", Forbidden),  # the owner's role changes only by handover
            ("owner", "owner", "admin", BadUserInput),  # nobody changes their own role
            ("staff", "staff", "admin", BadUserInput),
            ("owner", "outsider", "admin", NotFound),  # not a member
            ("owner", "member", "boss", BadUserInput),
        ],
    )
    def test_denials_change_nothing(self, world: World, actor, target, role, error):
        before = db_state()
        with pytest.raises(error):
            rooms.set_member_role(getattr(world, actor), world.public.pk, getattr(world, target).pk, role)
        assert db_state() == before

    def test_private_room_of_others_is_not_found_and_unknown_user_too(self, world: World):
        before = db_state()
        with pytest.raises(NotFound):
            rooms.set_member_role(world.outsider, world.private.pk, world.member.pk, "admin")
        with pytest.raises(NotFound):
            rooms.set_member_role(world.owner, world.private.pk, 987654, "admin")
        assert db_state() == before

    def test_direct_chats_have_no_roles_to_change(self, world: World):
        direct = rooms.start_direct_chat(world.member, world.outsider.pk)
        before = db_state()
        for actor in (world.member, world.staff):
            with pytest.raises(Forbidden):
                rooms.set_member_role(actor, direct.pk, world.outsider.pk, "admin")
        assert db_state() == before
