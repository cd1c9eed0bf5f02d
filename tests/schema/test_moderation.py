"""Moderation through the real API: bans, mutes, blocks, reports, slow mode,
invite links and unique public room names. Every refusal also asserts that
nothing changed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Ban, Block, Event, Invite, Membership, Message, Mute, Notification, Report, Room
from chat.services import messages as message_services
from chat.services import moderation
from chat.services import rooms as room_services
from tests.chat_world import World, db_state, events_after, gid, last_event_id, user_snap

pytestmark = pytest.mark.django_db

BAN = (
    "mutation Ban($roomId: ID!, $userId: ID!, $reason: String) "
    "{ banMember(roomId: $roomId, userId: $userId, reason: $reason) { memberCount } }"
)
UNBAN = "mutation Unban($roomId: ID!, $userId: ID!) { unbanMember(roomId: $roomId, userId: $userId) { memberCount } }"
BANS = (
    "query Bans($id: ID!) { room(id: $id) { bans(first: 10) { totalCount edges { node "
    "{ user { username } by { username } reason createdAt } } } } }"
)
MUTE = (
    "mutation Mute($roomId: ID!, $userId: ID!, $until: DateTime) "
    "{ muteMember(roomId: $roomId, userId: $userId, until: $until) { members { user { username } isMuted mutedUntil } } }"
)
UNMUTE = (
    "mutation Unmute($roomId: ID!, $userId: ID!) "
    "{ unmuteMember(roomId: $roomId, userId: $userId) { members { user { username } isMuted } } }"
)
BLOCK = "mutation Block($userId: ID!) { blockUser(userId: $userId) { username } }"
UNBLOCK = "mutation Unblock($userId: ID!) { unblockUser(userId: $userId) { username } }"
BLOCKED_USERS = "query { me { blockedUsers { username } } }"
REPORT = (
    "mutation Report($id: ID!, $reason: ReportReason!, $comment: String) "
    "{ reportMessage(id: $id, reason: $reason, comment: $comment) }"
)
REPORTS = (
    "query Reports($id: ID!) { room(id: $id) { reports(first: 10) { edges { node "
    "{ id reason comment text reporter { username } message { id } resolvedAt } } } } }"
)
RESOLVE = "mutation Resolve($id: ID!) { resolveReport(id: $id) { resolvedAt resolvedBy { username } } }"
UPDATE_ROOM = (
    "mutation UpdateRoom($input: UpdateRoomInput!) { updateRoom(input: $input) { name isPrivate slowModeSeconds } }"
)
CREATE_ROOM = "mutation CreateRoom($input: CreateRoomInput!) { createRoom(input: $input) { name } }"
SEND = "mutation Send($roomId: ID!, $text: String!) { sendMessage(input: {roomId: $roomId, text: $text}) { id text } }"
EDIT = "mutation Edit($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { text } }"
DELETE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { isDeleted } }"
TYPING = "mutation Typing($roomId: ID!) { setTyping(roomId: $roomId, typing: true) }"
REACT = "mutation React($messageId: ID!, $emoji: String!) { addReaction(messageId: $messageId, emoji: $emoji) { id } }"
JOIN = "mutation Join($roomId: ID!) { joinRoom(roomId: $roomId) { name } }"
ADD = "mutation Add($roomId: ID!, $userId: ID!) { addMember(roomId: $roomId, userId: $userId) { memberCount } }"
DIRECT = "mutation Direct($userId: ID!) { startDirectChat(userId: $userId) { id } }"
MESSAGES = (
    "query Messages($roomId: ID!) { messages(roomId: $roomId, first: 10) "
    "{ edges { node { text sender { username } senderBlocked } } } }"
)
CREATE_INVITE = (
    "mutation Invite($roomId: ID!, $maxUses: Int, $expiresIn: Int) "
    "{ createInvite(roomId: $roomId, maxUses: $maxUses, expiresIn: $expiresIn) "
    "{ code url expiresAt uses maxUses revoked } }"
)
REVOKE_INVITE = "mutation Revoke($code: String!) { revokeInvite(code: $code) { code revoked uses } }"
JOIN_BY_INVITE = "mutation JoinByInvite($code: String!) { joinByInvite(code: $code) { name myRole } }"
INVITES = "query Invites($id: ID!) { room(id: $id) { invites { code uses maxUses revoked } } }"


def last_seq(room: Room) -> int:
    return Room.objects.get(pk=room.pk).last_seq


def codes(body) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def refused(body, code: str, message: str | None = None) -> None:
    assert codes(body) == [code], body
    if message is not None:
        assert body["errors"][0]["message"] == message, body


# --- Bans ------------------------------------------------------------------------------


class TestBans:
    def test_a_ban_removes_the_member_with_member_left_banned(self, gql, world: World):
        mark, seq = last_event_id(), last_seq(world.public)
        body = gql(
            BAN,
            {"roomId": gid("Room", world.public.pk), "userId": gid("User", world.member.pk), "reason": " spam "},
            user=world.admin,
        )
        assert body == {"data": {"banMember": {"memberCount": 3}}}
        assert not Membership.objects.filter(room=world.public, user=world.member).exists()
        ban = Ban.objects.get(room=world.public, user=world.member)
        assert (ban.banned_by, ban.reason) == (world.admin, "spam")
        assert events_after(mark) == [
            (
                world.public.pk,
                "MemberLeft",
                seq + 1,
                {"user": user_snap(world.member), "reason": "banned", "by": user_snap(world.admin)},
            )
        ]

    def test_while_banned_nothing_brings_them_back(self, gql, world: World):
        moderation.ban_member(world.owner, world.public.pk, world.member.pk)
        invite = moderation.create_invite(world.owner, world.public.pk)
        before = db_state()
        room_id = gid("Room", world.public.pk)
        for body in (
            gql(JOIN, {"roomId": room_id}, user=world.member),
            gql(ADD, {"roomId": room_id, "userId": gid("User", world.member.pk)}, user=world.owner),
            gql(JOIN_BY_INVITE, {"code": invite.code}, user=world.member),
        ):
            refused(body, "FORBIDDEN", "You are banned from this room.")
        assert db_state() == before
        assert Invite.objects.get(pk=invite.pk).uses == 0

        assert gql(UNBAN, {"roomId": room_id, "userId": gid("User", world.member.pk)}, user=world.admin) == {
            "data": {"unbanMember": {"memberCount": 3}}
        }
        assert gql(JOIN, {"roomId": room_id}, user=world.member) == {"data": {"joinRoom": {"name": "Lobby"}}}

    def test_a_user_who_is_not_a_member_can_be_banned_in_advance(self, gql, world: World):
        mark = last_event_id()
        body = gql(
            BAN, {"roomId": gid("Room", world.public.pk), "userId": gid("User", world.outsider.pk)}, user=world.admin
        )
        assert body == {"data": {"banMember": {"memberCount": 4}}}
        assert events_after(mark) == []  # nothing changed that members see
        refused(gql(JOIN, {"roomId": gid("Room", world.public.pk)}, user=world.outsider), "FORBIDDEN")

    def test_banning_again_changes_nothing(self, gql, world: World):
        moderation.ban_member(world.owner, world.public.pk, world.member.pk, "first")
        before = db_state()
        body = gql(
            BAN,
            {"roomId": gid("Room", world.public.pk), "userId": gid("User", world.member.pk), "reason": "2"},
            user=world.owner,
        )
        assert "errors" not in body
        assert db_state() == before
        assert Ban.objects.get(user=world.member).reason == "first"

    @pytest.mark.parametrize(
        ("actor", "target", "code"),
        [
            ("admin", "owner", "FORBIDDEN"),
            ("admin", "admin", "BAD_USER_INPUT"),
            ("member", "other_member", "FORBIDDEN"),
            ("outsider", "member", "FORBIDDEN"),
            ("owner", "owner", "BAD_USER_INPUT"),
        ],
    )
    def test_who_may_not_ban_whom(self, gql, world: World, actor, target, code):
        before = db_state()
        body = gql(
            BAN,
            {"roomId": gid("Room", world.public.pk), "userId": gid("User", getattr(world, target).pk)},
            user=getattr(world, actor),
        )
        refused(body, code)
        assert db_state() == before
        assert not Ban.objects.exists()

    def test_an_admin_cannot_ban_another_admin(self, gql, world: World):
        Membership.objects.filter(room=world.public, user=world.other_member).update(role=Membership.Role.ADMIN)
        before = db_state()
        body = gql(
            BAN,
            {"roomId": gid("Room", world.public.pk), "userId": gid("User", world.other_member.pk)},
            user=world.admin,
        )
        refused(body, "FORBIDDEN")
        assert db_state() == before

    def test_staff_ban_the_owner_and_ownership_moves_on(self, gql, world: World):
        body = gql(
            BAN, {"roomId": gid("Room", world.public.pk), "userId": gid("User", world.owner.pk)}, user=world.staff
        )
        assert body == {"data": {"banMember": {"memberCount": 3}}}
        assert Membership.objects.get(room=world.public, user=world.admin).role == "owner"

    def test_the_ban_list_is_for_moderators(self, gql, world: World):
        moderation.ban_member(world.owner, world.public.pk, world.member.pk, "flooding")
        body = gql(BANS, {"id": gid("Room", world.public.pk)}, user=world.admin)
        node = body["data"]["room"]["bans"]["edges"][0]["node"]
        assert body["data"]["room"]["bans"]["totalCount"] == 1
        assert node["user"] == {"username": "mia"} and node["by"] == {"username": "olga"}
        assert node["reason"] == "flooding" and node["createdAt"]
        refused(gql(BANS, {"id": gid("Room", world.public.pk)}, user=world.other_member), "FORBIDDEN")

    def test_staff_close_a_direct_chat_to_an_abuser(self, gql, world: World):
        dm = room_services.start_direct_chat(world.outsider, world.member.pk)
        moderation.ban_member(world.staff, dm.pk, world.outsider.pk)
        before = db_state()
        refused(
            gql(DIRECT, {"userId": gid("User", world.member.pk)}, user=world.outsider),
            "FORBIDDEN",
            "You are banned from this room.",
        )
        assert db_state() == before


# --- Mutes -----------------------------------------------------------------------------


class TestMutes:
    def test_a_muted_member_reads_but_does_not_write(self, gql, world: World):
        mark, seq = last_event_id(), last_seq(world.public)
        body = gql(
            MUTE, {"roomId": gid("Room", world.public.pk), "userId": gid("User", world.member.pk)}, user=world.admin
        )
        members = {m["user"]["username"]: m for m in body["data"]["muteMember"]["members"]}
        assert members["mia"]["isMuted"] is True and members["mia"]["mutedUntil"] is None
        assert members["max"]["isMuted"] is False
        assert events_after(mark) == [
            (
                world.public.pk,
                "MemberMuted",
                seq + 1,
                {"user": user_snap(world.member), "by": user_snap(world.admin), "until": None},
            )
        ]
        before = db_state()
        room_id = gid("Room", world.public.pk)
        for body in (
            gql(SEND, {"roomId": room_id, "text": "hi"}, user=world.member),
            gql(EDIT, {"id": gid("Message", world.message.pk), "text": "changed"}, user=world.member),
            gql(TYPING, {"roomId": room_id}, user=world.member),
            gql(REACT, {"messageId": gid("Message", world.owner_message.pk), "emoji": "👍"}, user=world.member),
        ):
            refused(body, "FORBIDDEN", "You are muted in this room.")
        assert db_state() == before
        # Still a member who reads.
        assert len(gql(MESSAGES, {"roomId": room_id}, user=world.member)["data"]["messages"]["edges"]) == 2

        mark = last_event_id()
        body = gql(UNMUTE, {"roomId": room_id, "userId": gid("User", world.member.pk)}, user=world.owner)
        assert {m["user"]["username"]: m["isMuted"] for m in body["data"]["unmuteMember"]["members"]}["mia"] is False
        assert [e[1] for e in events_after(mark)] == ["MemberUnmuted"]
        assert (
            gql(SEND, {"roomId": room_id, "text": "back"}, user=world.member)["data"]["sendMessage"]["text"] == "back"
        )

    def test_a_timed_mute_ends_by_itself(self, gql, world: World):
        until = timezone.now() + timedelta(minutes=5)
        body = gql(
            MUTE,
            {
                "roomId": gid("Room", world.public.pk),
                "userId": gid("User", world.member.pk),
                "until": until.isoformat(),
            },
            user=world.admin,
        )
        mia = next(m for m in body["data"]["muteMember"]["members"] if m["user"]["username"] == "mia")
        assert mia["isMuted"] is True and mia["mutedUntil"].startswith(until.strftime("%Y-%m-%dT%H:%M:%S"))
        refused(gql(SEND, {"roomId": gid("Room", world.public.pk), "text": "x"}, user=world.member), "FORBIDDEN")
        Mute.objects.update(until=timezone.now() - timedelta(seconds=1))  # time passes
        assert "errors" not in gql(SEND, {"roomId": gid("Room", world.public.pk), "text": "x"}, user=world.member)

    def test_leaving_and_rejoining_does_not_lift_a_mute(self, gql, world: World):
        moderation.mute_member(world.owner, world.public.pk, world.member.pk)
        room_services.leave_room(world.member, world.public.pk)
        room_services.join_room(world.member, world.public.pk)
        refused(gql(SEND, {"roomId": gid("Room", world.public.pk), "text": "x"}, user=world.member), "FORBIDDEN")

    @pytest.mark.parametrize(
        ("actor", "target", "until", "code"),
        [
            ("admin", "owner", None, "FORBIDDEN"),
            ("member", "other_member", None, "FORBIDDEN"),
            ("admin", "outsider", None, "NOT_FOUND"),
            ("admin", "member", "2001-01-01T00:00:00+00:00", "BAD_USER_INPUT"),
            ("admin", "member", "not a date", "BAD_USER_INPUT"),
        ],
    )
    def test_refusals_change_nothing(self, gql, world: World, actor, target, until, code):
        before = db_state()
        body = gql(
            MUTE,
            {"roomId": gid("Room", world.public.pk), "userId": gid("User", getattr(world, target).pk), "until": until},
            user=getattr(world, actor),
        )
        refused(body, code)
        assert db_state() == before
        assert not Mute.objects.exists()


# --- Blocks ----------------------------------------------------------------------------


class TestBlocks:
    def test_a_blocked_user_cannot_start_or_write_a_direct_chat(self, gql, world: World):
        dm = room_services.start_direct_chat(world.member, world.other_member.pk)
        assert gql(BLOCK, {"userId": gid("User", world.outsider.pk)}, user=world.member) == {
            "data": {"blockUser": {"username": "otto"}}
        }
        moderation.block_user(world.member, world.other_member.pk)
        before = db_state()
        refused(
            gql(DIRECT, {"userId": gid("User", world.member.pk)}, user=world.outsider),
            "FORBIDDEN",
            "You cannot message this user.",
        )
        refused(
            gql(SEND, {"roomId": gid("Room", dm.pk), "text": "hey"}, user=world.other_member),
            "FORBIDDEN",
            "You cannot message this user.",
        )
        assert db_state() == before
        # The blocker may still write, and in shared group rooms messages flow.
        assert "errors" not in gql(SEND, {"roomId": gid("Room", dm.pk), "text": "bye"}, user=world.member)
        assert "errors" not in gql(
            SEND, {"roomId": gid("Room", world.public.pk), "text": "hi"}, user=world.other_member
        )

        assert gql(BLOCKED_USERS, user=world.member) == {
            "data": {"me": {"blockedUsers": [{"username": "max"}, {"username": "otto"}]}}
        }
        assert gql(BLOCKED_USERS, user=world.other_member) == {"data": {"me": {"blockedUsers": []}}}

        gql(UNBLOCK, {"userId": gid("User", world.other_member.pk)}, user=world.member)
        assert "errors" not in gql(SEND, {"roomId": gid("Room", dm.pk), "text": "hey"}, user=world.other_member)
        assert gql(BLOCKED_USERS, user=world.member) == {"data": {"me": {"blockedUsers": [{"username": "otto"}]}}}

    def test_sender_blocked_depends_on_who_asks(self, gql, world: World):
        moderation.block_user(world.admin, world.member.pk)
        room_id = gid("Room", world.public.pk)
        flags = {
            role: [
                (e["node"]["sender"]["username"], e["node"]["senderBlocked"])
                for e in gql(MESSAGES, {"roomId": room_id}, user=getattr(world, role))["data"]["messages"]["edges"]
            ]
            for role in ("admin", "owner")
        }
        assert flags == {"admin": [("olga", False), ("mia", True)], "owner": [("olga", False), ("mia", False)]}

    def test_mentions_of_a_blocked_user_do_not_notify_the_blocker(
        self, world: World, published, django_capture_on_commit_callbacks
    ):
        moderation.block_user(world.admin, world.member.pk)
        with django_capture_on_commit_callbacks(execute=True):
            message_services.send_message(world.member, world.public.pk, "@adam @olga look")
        mentioned = [groups for groups, m in published if m.get("kind") == "MENTIONED"]
        assert mentioned == [[f"user.{world.owner.pk}"]]
        # The stored inbox too: the blocker has no notification of it.
        stored = Notification.objects.filter(kind="MENTIONED").values_list("user_id", flat=True)
        assert list(stored) == [world.owner.pk]

    def test_blocking_is_private_and_idempotent(self, gql, world: World):
        for _ in range(2):
            assert "errors" not in gql(BLOCK, {"userId": gid("User", world.member.pk)}, user=world.admin)
        assert Block.objects.count() == 1
        assert Event.objects.filter(created_at__gte=Block.objects.get().created_at).count() == 0
        before = db_state()
        refused(gql(BLOCK, {"userId": gid("User", world.admin.pk)}, user=world.admin), "BAD_USER_INPUT")
        refused(gql(BLOCK, {"userId": gid("User", 10**9)}, user=world.admin), "NOT_FOUND")
        assert db_state() == before and Block.objects.count() == 1


# --- Reports ---------------------------------------------------------------------------


class TestReports:
    def test_a_report_keeps_the_text_as_it_was_for_the_moderators(self, gql, world: World):
        body = gql(
            REPORT,
            {"id": gid("Message", world.message.pk), "reason": "SPAM", "comment": "ads"},
            user=world.other_member,
        )
        assert body == {"data": {"reportMessage": True}}
        message_services.edit_message(world.member, world.message.pk, "innocent now")
        reports = gql(REPORTS, {"id": gid("Room", world.public.pk)}, user=world.admin)["data"]["room"]["reports"]
        node = reports["edges"][0]["node"]
        assert {k: node[k] for k in ("reason", "comment", "text", "reporter", "resolvedAt")} == {
            "reason": "SPAM",
            "comment": "ads",
            "text": "hello lobby",
            "reporter": {"username": "max"},
            "resolvedAt": None,
        }
        refused(gql(REPORTS, {"id": gid("Room", world.public.pk)}, user=world.member), "FORBIDDEN")
        refused(gql(RESOLVE, {"id": node["id"]}, user=world.member), "NOT_FOUND")

        resolved = gql(RESOLVE, {"id": node["id"]}, user=world.owner)["data"]["resolveReport"]
        assert resolved["resolvedBy"] == {"username": "olga"} and resolved["resolvedAt"]
        reports = gql(REPORTS, {"id": gid("Room", world.public.pk)}, user=world.admin)["data"]["room"]["reports"]
        assert reports["edges"] == []

    @pytest.mark.parametrize(
        ("actor", "message", "reason", "code"),
        [
            ("member", "message", "SPAM", "BAD_USER_INPUT"),  # one's own
            ("outsider", "message", "SPAM", "NOT_FOUND"),
            ("staff", "private_message", "ABUSE", "NOT_FOUND"),
            ("admin", "message", "RUDE", "BAD_USER_INPUT"),
        ],
    )
    def test_refusals_change_nothing(self, gql, world: World, actor, message, reason, code):
        before = db_state()
        body = gql(
            REPORT, {"id": gid("Message", getattr(world, message).pk), "reason": reason}, user=getattr(world, actor)
        )
        refused(body, code)
        assert db_state() == before and not Report.objects.exists()

    def test_once_per_reporter_and_message(self, gql, world: World):
        variables = {"id": gid("Message", world.message.pk), "reason": "ABUSE"}
        assert gql(REPORT, variables, user=world.owner) == {"data": {"reportMessage": True}}
        refused(gql(REPORT, variables, user=world.owner), "BAD_USER_INPUT", "You have already reported this message.")
        assert gql(REPORT, variables, user=world.admin) == {"data": {"reportMessage": True}}
        assert Report.objects.count() == 2

    def test_deleting_the_message_redacts_the_reported_text(self, gql, world: World):
        moderation.report_message(world.owner, world.message.pk, "HARASSMENT", "mean")
        assert "errors" not in gql(DELETE, {"id": gid("Message", world.message.pk)}, user=world.member)
        report = Report.objects.get()
        assert report.text_snapshot == "" and report.comment == "mean"
        node = gql(REPORTS, {"id": gid("Room", world.public.pk)}, user=world.admin)["data"]["room"]["reports"]["edges"][
            0
        ]
        assert node["node"]["text"] == ""

    def test_staff_see_every_report_in_the_admin(self, client, world: World):
        moderation.report_message(world.owner, world.message.pk, "SPAM")
        moderation.report_message(world.member, world.owner_message.pk, "OTHER")
        world.staff.is_superuser = True
        world.staff.save()
        client.force_login(world.staff)
        page = client.get("/admin/chat/report/")
        assert page.status_code == 200
        assert page.content.decode().count("hello lobby") + page.content.decode().count("welcome") >= 2


# --- Slow mode -------------------------------------------------------------------------


class TestSlowMode:
    def test_members_send_one_message_per_interval(self, gql, world: World):
        room_id = gid("Room", world.public.pk)
        body = gql(UPDATE_ROOM, {"input": {"roomId": room_id, "slowModeSeconds": 30}}, user=world.admin)
        assert body == {"data": {"updateRoom": {"name": "Lobby", "isPrivate": False, "slowModeSeconds": 30}}}
        Message.objects.filter(room=world.public).update(created_at=timezone.now() - timedelta(minutes=1))
        assert "errors" not in gql(SEND, {"roomId": room_id, "text": "one"}, user=world.member)
        before = db_state()
        body = gql(SEND, {"roomId": room_id, "text": "two"}, user=world.member)
        refused(body, "RATE_LIMITED")
        assert 28 <= body["errors"][0]["extensions"]["retryAfter"] <= 30
        assert db_state() == before
        # Owners and admins are not slowed down; other members have their own interval.
        for user in (world.owner, world.admin, world.admin, world.other_member):
            assert "errors" not in gql(SEND, {"roomId": room_id, "text": "fine"}, user=user)
        Message.objects.filter(sender=world.member).update(created_at=timezone.now() - timedelta(seconds=31))
        assert "errors" not in gql(SEND, {"roomId": room_id, "text": "three"}, user=world.member)

    @pytest.mark.parametrize(
        ("user", "seconds", "code"),
        [("member", 10, "FORBIDDEN"), ("admin", 3601, "BAD_USER_INPUT"), ("owner", -1, "BAD_USER_INPUT")],
    )
    def test_refusals_change_nothing(self, gql, world: World, user, seconds, code):
        before = db_state()
        body = gql(
            UPDATE_ROOM,
            {"input": {"roomId": gid("Room", world.public.pk), "slowModeSeconds": seconds}},
            user=getattr(world, user),
        )
        refused(body, code)
        assert db_state() == before and Room.objects.get(pk=world.public.pk).slow_mode_seconds == 0


# --- Invite links ----------------------------------------------------------------------


class TestInvites:
    def test_an_invite_lets_anyone_signed_in_join_a_private_room(self, gql, world: World):
        body = gql(
            CREATE_INVITE, {"roomId": gid("Room", world.private.pk), "maxUses": 2, "expiresIn": 3600}, user=world.admin
        )
        invite = body["data"]["createInvite"]
        assert len(invite["code"]) >= 22  # at least 128 bits in URL-safe base64
        assert invite["url"] == f"http://testserver/#invite={invite['code']}"
        assert (invite["uses"], invite["maxUses"], invite["revoked"]) == (0, 2, False)
        assert invite["expiresAt"]

        mark = last_event_id()
        body = gql(JOIN_BY_INVITE, {"code": invite["code"]}, user=world.outsider)
        assert body == {"data": {"joinByInvite": {"name": "Secret", "myRole": "MEMBER"}}}
        assert [(e[1], e[3]["user"]["username"], e[3]["by"]) for e in events_after(mark)] == [
            ("MemberJoined", "otto", None)
        ]
        # A member again uses nothing up.
        assert "errors" not in gql(JOIN_BY_INVITE, {"code": invite["code"]}, user=world.outsider)
        assert Invite.objects.get().uses == 1
        listed = gql(INVITES, {"id": gid("Room", world.private.pk)}, user=world.owner)["data"]["room"]["invites"]
        assert listed == [{"code": invite["code"], "uses": 1, "maxUses": 2, "revoked": False}]
        refused(gql(INVITES, {"id": gid("Room", world.private.pk)}, user=world.member), "FORBIDDEN")

    def test_expired_used_up_revoked_and_unknown_codes_look_the_same(self, gql, world: World):
        used_up = moderation.create_invite(world.owner, world.public.pk, max_uses=1)
        moderation.join_by_invite(world.outsider, used_up.code)
        expired = moderation.create_invite(world.owner, world.public.pk, expires_in=60)
        Invite.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        revoked = moderation.create_invite(world.owner, world.public.pk)
        body = gql(REVOKE_INVITE, {"code": revoked.code}, user=world.admin)
        assert body["data"]["revokeInvite"] == {"code": revoked.code, "revoked": True, "uses": 0}
        newcomer = type(world.owner).objects.create(username="nina", email="nina@example.com")
        before = db_state()
        answers = [
            gql(JOIN_BY_INVITE, {"code": code}, user=newcomer)
            for code in (used_up.code, expired.code, revoked.code, "x" * 32, "", "y" * 5000)
        ]
        assert [(codes(a), a["errors"][0]["message"]) for a in answers] == [(["NOT_FOUND"], "Invite not found.")] * 6
        assert db_state() == before

    @pytest.mark.parametrize(
        ("actor", "variables", "code"),
        [
            ("member", {}, "FORBIDDEN"),
            ("outsider", {}, "FORBIDDEN"),
            ("admin", {"maxUses": 0}, "BAD_USER_INPUT"),
            ("admin", {"expiresIn": -5}, "BAD_USER_INPUT"),
        ],
    )
    def test_who_may_create_invites(self, gql, world: World, actor, variables, code):
        before = db_state()
        body = gql(CREATE_INVITE, {"roomId": gid("Room", world.public.pk), **variables}, user=getattr(world, actor))
        refused(body, code)
        assert db_state() == before and not Invite.objects.exists()

    def test_only_moderators_revoke(self, gql, world: World):
        invite = moderation.create_invite(world.owner, world.public.pk)
        refused(gql(REVOKE_INVITE, {"code": invite.code}, user=world.member), "NOT_FOUND", "Invite not found.")
        assert Invite.objects.get().revoked_at is None

    def test_codes_are_unguessable(self, world: World, settings):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "invite": (1000, 60)}
        codes_ = {moderation.create_invite(world.owner, world.public.pk).code for _ in range(50)}
        assert len(codes_) == 50 and all(len(c) >= 32 for c in codes_)


# --- Unique public names ---------------------------------------------------------------


class TestPublicNames:
    def test_a_second_public_room_cannot_take_a_name_in_any_case(self, gql, world: World):
        before = db_state()
        body = gql(CREATE_ROOM, {"input": {"name": "  LOBBY "}}, user=world.outsider)
        refused(body, "BAD_USER_INPUT", "A public room with this name already exists.")
        assert db_state() == before
        # Private rooms may share names; so may a public room with a deleted one.
        assert "errors" not in gql(CREATE_ROOM, {"input": {"name": "lobby", "isPrivate": True}}, user=world.outsider)
        room_services.delete_room(world.owner, world.public.pk)
        assert "errors" not in gql(CREATE_ROOM, {"input": {"name": "lobby"}}, user=world.outsider)

    def test_renaming_or_publishing_into_a_taken_name(self, gql, world: World):
        other = room_services.create_room(world.outsider, "secret")
        before = db_state()
        refused(
            gql(UPDATE_ROOM, {"input": {"roomId": gid("Room", other.pk), "name": "lobby"}}, user=world.outsider),
            "BAD_USER_INPUT",
        )
        refused(
            gql(
                UPDATE_ROOM, {"input": {"roomId": gid("Room", world.private.pk), "isPrivate": False}}, user=world.owner
            ),
            "BAD_USER_INPUT",
        )
        assert db_state() == before
        # Renaming a room to its own name in another case is fine.
        body = gql(UPDATE_ROOM, {"input": {"roomId": gid("Room", world.public.pk), "name": "LOBBY"}}, user=world.owner)
        assert body["data"]["updateRoom"]["name"] == "LOBBY"

    def test_the_database_holds_the_rule_too(self, world: World):
        from django.db import IntegrityError, transaction

        with pytest.raises(IntegrityError), transaction.atomic():
            Room.objects.create(name="lObBy")


def test_a_muted_user_who_left_can_be_unmuted(gql, world: World):
    moderation.mute_member(world.owner, world.public.pk, world.member.pk)
    room_services.leave_room(world.member, world.public.pk)
    body = gql(
        UNMUTE, {"roomId": gid("Room", world.public.pk), "userId": gid("User", world.member.pk)}, user=world.admin
    )
    assert "errors" not in body and not Mute.objects.exists()
    room_services.join_room(world.member, world.public.pk)
    assert "errors" not in gql(SEND, {"roomId": gid("Room", world.public.pk), "text": "back"}, user=world.member)


def test_moderation_writes_are_rate_limited(gql, world: World, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "invite": (1, 60), "report": (1, 3600)}
    variables = {"roomId": gid("Room", world.public.pk)}
    assert "errors" not in gql(CREATE_INVITE, variables, user=world.admin)
    assert gql(REPORT, {"id": gid("Message", world.message.pk), "reason": "SPAM"}, user=world.owner)["data"]
    before = db_state()
    body = gql(CREATE_INVITE, variables, user=world.admin)
    refused(body, "RATE_LIMITED")
    assert body["errors"][0]["extensions"]["retryAfter"] >= 1
    refused(
        gql(REPORT, {"id": gid("Message", world.private_message.pk), "reason": "SPAM"}, user=world.owner),
        "RATE_LIMITED",
    )
    assert db_state() == before
