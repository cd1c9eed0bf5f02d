"""Every query and mutation of the chat API, as every kind of caller.

Roles: anonymous, a signed-in user in no room (outsider), a member, an admin
and the owner of the rooms, a staff user who is in none of them, and the
moderation roles: a user banned from the public room (in no room), a member of
both rooms muted in both, and a member of both rooms whom `member` blocked.
Each case asserts the answer; each denial also asserts that nothing changed in
the database (rows and fields) and that no event was written.
"""

from __future__ import annotations

import pytest

from chat.models import Room
from chat.services import messages, pins, reactions
from tests.chat_world import World, build_world, db_state, gid, with_moderation_roles

ROLES = ["anonymous", "outsider", "member", "admin", "owner", "staff", "banned", "muted", "blocked"]

USERS = "query Users { users(first: 10) { edges { node { username } } } }"
USER = "query User($id: ID!) { user(id: $id) { username displayName } }"
ROOMS = "query Rooms { rooms(first: 10) { edges { node { name } } } }"
ROOM = "query Room($id: ID!) { room(id: $id) { name myRole } }"
MESSAGES = "query Messages($roomId: ID!) { messages(roomId: $roomId, first: 10) { edges { node { text } } } }"
NODE = "query Node($id: ID!) { node(id: $id) { ... on Room { name } } }"

CREATE_ROOM = "mutation CreateRoom($input: CreateRoomInput!) { createRoom(input: $input) { name myRole } }"
UPDATE_ROOM = "mutation UpdateRoom($input: UpdateRoomInput!) { updateRoom(input: $input) { name topic } }"
DELETE_ROOM = "mutation DeleteRoom($roomId: ID!) { deleteRoom(roomId: $roomId) }"
JOIN_ROOM = "mutation JoinRoom($roomId: ID!) { joinRoom(roomId: $roomId) { name myRole } }"
LEAVE_ROOM = "mutation LeaveRoom($roomId: ID!) { leaveRoom(roomId: $roomId) }"
ADD_MEMBER = (
    "mutation AddMember($roomId: ID!, $userId: ID!) { addMember(roomId: $roomId, userId: $userId) { memberCount } }"
)
REMOVE_MEMBER = "mutation RemoveMember($roomId: ID!, $userId: ID!) { removeMember(roomId: $roomId, userId: $userId) { memberCount } }"
SET_MEMBER_ROLE = (
    "mutation SetMemberRole($roomId: ID!, $userId: ID!, $role: RoomRole!) "
    "{ setMemberRole(roomId: $roomId, userId: $userId, role: $role) { members { user { username } role } } }"
)
START_DIRECT_CHAT = "mutation StartDirectChat($userId: ID!) { startDirectChat(userId: $userId) { kind memberCount } }"
SEND_MESSAGE = (
    "mutation SendMessage($input: SendMessageInput!) { sendMessage(input: $input) { text sender { username } } }"
)
EDIT_MESSAGE = "mutation EditMessage($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { text } }"
DELETE_MESSAGE = "mutation DeleteMessage($id: ID!) { deleteMessage(id: $id) { text isDeleted } }"
MARK_READ = "mutation MarkRead($roomId: ID!, $messageId: ID!) { markRead(roomId: $roomId, messageId: $messageId) { unreadCount } }"
NOTIFICATIONS = "query Notifications { notifications(first: 10) { totalCount edges { node { kind room { name } } } } }"
MARK_NOTIFICATIONS_READ = "mutation MarkNotificationsRead { markNotificationsRead(all: true) }"
SET_ROOM_NOTIFICATION_LEVEL = (
    "mutation SetRoomNotificationLevel($roomId: ID!) "
    "{ setRoomNotificationLevel(roomId: $roomId, level: NONE) { name notificationLevel } }"
)
UPDATE_PROFILE_AVATAR = (
    "mutation UpdateProfile($input: UpdateProfileInput!) { updateProfile(input: $input) { username avatarUrl } }"
)
SEARCH_MESSAGES = (
    "query SearchMessages($query: String!, $roomId: ID) "
    "{ searchMessages(query: $query, roomId: $roomId) { totalCount edges { node { text } } } }"
)
# The rooms each role was added to by the owner when the world was made (one ADDED_TO_ROOM each).
ADDED_TO = {"admin": ["Secret", "Lobby"], "member": ["Secret", "Lobby"], "muted": ["Secret"], "blocked": ["Secret"]}

ALL_SIGNED_IN_OK = {role: None for role in ROLES if role != "anonymous"}
IN_BOTH_OK = {"member": None, "admin": None, "owner": None, "muted": None, "blocked": None}
NOT_MODERATORS = {"member": "FORBIDDEN", "muted": "FORBIDDEN", "blocked": "FORBIDDEN"}
MEMBERS_OK = {"member": None, "admin": None, "owner": None}
# Members of both rooms besides member, admin and owner (with role MEMBER).
OTHER_MEMBERS = ("muted", "blocked")
IN_BOTH_ROOMS = (*MEMBERS_OK, *OTHER_MEMBERS)


def role_name(role: str) -> str:
    return "MEMBER" if role in OTHER_MEMBERS else role.upper()


@pytest.fixture
def world(db) -> World:
    return with_moderation_roles(build_world())


def case(name, query, variables, outcomes, answer=None, changes=True, setup=None):
    """One row of the matrix: ``outcomes`` maps a role to its error code (None: allowed);
    anonymous is always UNAUTHENTICATED. ``answer(world, role)`` is the expected data.
    ``setup(world)`` adds what the row needs to the world before the operation."""
    missing = set(ROLES) - {"anonymous", *outcomes}
    assert not missing, f"{name}: no outcome for {missing}"
    return pytest.param(query, variables, {"anonymous": "UNAUTHENTICATED", **outcomes}, answer, changes, setup, id=name)


def lobby_members(**roles):
    """The lobby's members in join order with their roles, changed by ``roles`` (username=ROLE)."""
    base = {"olga": "OWNER", "adam": "ADMIN", "mia": "MEMBER", "max": "MEMBER", "moe": "MEMBER", "bob": "MEMBER"}
    return [{"user": {"username": u}, "role": roles.get(u, r)} for u, r in base.items()]


def names(*values):
    return {"edges": [{"node": {"name": v}} for v in values]}


# --- moderation
BAN = 'mutation Ban($roomId: ID!, $userId: ID!) { banMember(roomId: $roomId, userId: $userId, reason: "x") { memberCount } }'
UNBAN = "mutation Unban($roomId: ID!, $userId: ID!) { unbanMember(roomId: $roomId, userId: $userId) { memberCount } }"
MUTE = (
    "mutation Mute($roomId: ID!, $userId: ID!) "
    "{ muteMember(roomId: $roomId, userId: $userId) { members(first: 2) { user { username } isMuted } } }"
)
UNMUTE = (
    "mutation Unmute($roomId: ID!, $userId: ID!) { unmuteMember(roomId: $roomId, userId: $userId) { memberCount } }"
)
BLOCK = "mutation Block($userId: ID!) { blockUser(userId: $userId) { username } }"
UNBLOCK = "mutation Unblock($userId: ID!) { unblockUser(userId: $userId) { username } }"
BLOCKED_USERS = "query Blocked($id: ID!) { user(id: $id) { blockedUsers { username } } }"
REPORT = 'mutation Report($id: ID!) { reportMessage(id: $id, reason: SPAM, comment: "no") }'
RESOLVE = "mutation Resolve($id: ID!) { resolveReport(id: $id) { reason text } }"
CREATE_INVITE = "mutation Invite($roomId: ID!) { createInvite(roomId: $roomId, maxUses: 3) { uses maxUses revoked } }"
REVOKE_INVITE = "mutation Revoke($code: String!) { revokeInvite(code: $code) { uses revoked } }"
JOIN_BY_INVITE = "mutation JoinByInvite($code: String!) { joinByInvite(code: $code) { name myRole } }"
SLOW_MODE = (
    "mutation Slow($roomId: ID!) { updateRoom(input: {roomId: $roomId, slowModeSeconds: 60}) { slowModeSeconds } }"
)
SET_TYPING = "mutation Typing($roomId: ID!) { setTyping(roomId: $roomId, typing: true) }"
ROOM_BANS = "query Bans($id: ID!) { room(id: $id) { bans { edges { node { user { username } reason } } } } }"
ROOM_REPORTS = "query Reports($id: ID!) { room(id: $id) { reports { edges { node { reason text comment } } } } }"
ROOM_INVITES = "query Invites($id: ID!) { room(id: $id) { invites { uses revoked } } }"

MODERATORS_OK = {"admin": None, "owner": None, "staff": None}
PUBLIC_MODERATION = {"outsider": "FORBIDDEN", "banned": "FORBIDDEN", **NOT_MODERATORS, **MODERATORS_OK}
PRIVATE_MODERATION = {"outsider": "NOT_FOUND", "banned": "NOT_FOUND", **NOT_MODERATORS, **MODERATORS_OK}
REPORT_HIDDEN = dict.fromkeys(("outsider", "banned", "member", "muted", "blocked"), "NOT_FOUND")

MODERATION_CASES = [
    case(
        "banMember",
        BAN,
        lambda w: {"roomId": gid("Room", w.public.pk), "userId": gid("User", w.other_member.pk)},
        PUBLIC_MODERATION,
        lambda w, role: {"banMember": {"memberCount": 5}},
    ),
    case(
        "banMember private",
        BAN,
        lambda w: {"roomId": gid("Room", w.private.pk), "userId": gid("User", w.member.pk)},
        PRIVATE_MODERATION,
        lambda w, role: {"banMember": {"memberCount": 4}},
    ),
    case(
        "unbanMember",
        UNBAN,
        lambda w: {"roomId": gid("Room", w.public.pk), "userId": gid("User", w.banned.pk)},
        PUBLIC_MODERATION,
        lambda w, role: {"unbanMember": {"memberCount": 6}},
    ),
    case(
        "muteMember",
        MUTE,
        lambda w: {"roomId": gid("Room", w.public.pk), "userId": gid("User", w.admin.pk)},
        {**PUBLIC_MODERATION, "admin": "BAD_USER_INPUT"},
        lambda w, role: {
            "muteMember": {
                "members": [
                    {"user": {"username": "olga"}, "isMuted": False},
                    {"user": {"username": "adam"}, "isMuted": True},
                ]
            }
        },
    ),
    case(
        "muteMember private",
        MUTE,
        lambda w: {"roomId": gid("Room", w.private.pk), "userId": gid("User", w.member.pk)},
        PRIVATE_MODERATION,
        lambda w, role: {
            "muteMember": {
                "members": [
                    {"user": {"username": "olga"}, "isMuted": False},
                    {"user": {"username": "adam"}, "isMuted": False},
                ]
            }
        },
    ),
    case(
        "unmuteMember",
        UNMUTE,
        lambda w: {"roomId": gid("Room", w.public.pk), "userId": gid("User", w.muted.pk)},
        PUBLIC_MODERATION,
        lambda w, role: {"unmuteMember": {"memberCount": 6}},
    ),
    case(
        "blockUser",
        BLOCK,
        lambda w: {"userId": gid("User", w.other_member.pk)},
        {**ALL_SIGNED_IN_OK, "blocked": None},
        lambda w, role: {"blockUser": {"username": "max"}},
    ),
    case(
        "blockUser oneself",
        BLOCK,
        lambda w: {"userId": gid("User", w.blocked.pk)},
        {**ALL_SIGNED_IN_OK, "blocked": "BAD_USER_INPUT"},
        lambda w, role: {"blockUser": {"username": "bob"}},
    ),
    case(
        "unblockUser",
        UNBLOCK,
        lambda w: {"userId": gid("User", w.blocked.pk)},
        {**ALL_SIGNED_IN_OK, "blocked": "BAD_USER_INPUT"},
        lambda w, role: {"unblockUser": {"username": "bob"}},
    ),
    case(
        "user blockedUsers",  # one's own only: `member` blocked `blocked`
        BLOCKED_USERS,
        lambda w: {"id": gid("User", w.member.pk)},
        ALL_SIGNED_IN_OK,
        lambda w, role: {"user": {"blockedUsers": [{"username": "bob"}] if role == "member" else []}},
        changes=False,
    ),
    case(
        "reportMessage",
        REPORT,
        lambda w: {"id": gid("Message", w.message.pk)},
        {
            "outsider": "NOT_FOUND",
            "staff": "NOT_FOUND",
            "banned": "NOT_FOUND",
            "member": "BAD_USER_INPUT",  # one's own message
            "admin": None,
            "owner": None,
            "muted": None,
            "blocked": None,
        },
        lambda w, role: {"reportMessage": True},
    ),
    case(
        "resolveReport",
        RESOLVE,
        lambda w: {"id": gid("Report", w.report.pk)},
        {**REPORT_HIDDEN, **MODERATORS_OK},
        lambda w, role: {"resolveReport": {"reason": "OTHER", "text": "welcome"}},
    ),
    case(
        "room bans",
        ROOM_BANS,
        lambda w: {"id": gid("Room", w.public.pk)},
        PUBLIC_MODERATION,
        lambda w, role: {"room": {"bans": {"edges": [{"node": {"user": {"username": "bea"}, "reason": "spam"}}]}}},
        changes=False,
    ),
    case(
        "room reports",
        ROOM_REPORTS,
        lambda w: {"id": gid("Room", w.public.pk)},
        PUBLIC_MODERATION,
        lambda w, role: {
            "room": {"reports": {"edges": [{"node": {"reason": "OTHER", "text": "welcome", "comment": "rude"}}]}}
        },
        changes=False,
    ),
    case(
        "room invites private",
        ROOM_INVITES,
        lambda w: {"id": gid("Room", w.private.pk)},
        {**PRIVATE_MODERATION, "staff": "NOT_FOUND"},  # `room` shows staff no private room; the admin does
        lambda w, role: {"room": {"invites": [{"uses": 0, "revoked": False}]}},
        changes=False,
    ),
    case(
        "createInvite",
        CREATE_INVITE,
        lambda w: {"roomId": gid("Room", w.public.pk)},
        PUBLIC_MODERATION,
        lambda w, role: {"createInvite": {"uses": 0, "maxUses": 3, "revoked": False}},
    ),
    case(
        "createInvite private",
        CREATE_INVITE,
        lambda w: {"roomId": gid("Room", w.private.pk)},
        PRIVATE_MODERATION,
        lambda w, role: {"createInvite": {"uses": 0, "maxUses": 3, "revoked": False}},
    ),
    case(
        "revokeInvite",
        REVOKE_INVITE,
        lambda w: {"code": w.private_invite.code},
        {**dict.fromkeys(("outsider", "banned", *NOT_MODERATORS), "NOT_FOUND"), **MODERATORS_OK},
        lambda w, role: {"revokeInvite": {"uses": 0, "revoked": True}},
    ),
    case(
        "joinByInvite",
        JOIN_BY_INVITE,
        lambda w: {"code": w.public_invite.code},
        {**ALL_SIGNED_IN_OK, "banned": "FORBIDDEN"},
        lambda w, role: {
            "joinByInvite": {"name": "Lobby", "myRole": role_name(role) if role in IN_BOTH_ROOMS else "MEMBER"}
        },
    ),
    case(
        "joinByInvite private",
        JOIN_BY_INVITE,
        lambda w: {"code": w.private_invite.code},
        ALL_SIGNED_IN_OK,
        lambda w, role: {
            "joinByInvite": {"name": "Secret", "myRole": role_name(role) if role in IN_BOTH_ROOMS else "MEMBER"}
        },
    ),
    case(
        "updateRoom slowModeSeconds",
        SLOW_MODE,
        lambda w: {"roomId": gid("Room", w.public.pk)},
        PUBLIC_MODERATION,
        lambda w, role: {"updateRoom": {"slowModeSeconds": 60}},
    ),
    case(
        "setTyping",
        SET_TYPING,
        lambda w: {"roomId": gid("Room", w.public.pk)},
        {"outsider": "NOT_FOUND", "staff": "NOT_FOUND", "banned": "NOT_FOUND", **IN_BOTH_OK, "muted": "FORBIDDEN"},
        lambda w, role: {"setTyping": True},
        changes=False,
    ),
]

CASES = [
    # --- queries (never change anything)
    case(
        "users",
        USERS,
        lambda w: {},
        ALL_SIGNED_IN_OK,
        lambda w, role: {
            "users": {
                "edges": [
                    {"node": {"username": u}}
                    for u in sorted(
                        {"olga", "adam", "mia", "max", "otto", "sam", "bea", "moe", "bob"} - {w.user(role).username}
                    )
                ]
            }
        },
        changes=False,
    ),
    case(
        "user",
        USER,
        lambda w: {"id": gid("User", w.member.pk)},
        ALL_SIGNED_IN_OK,
        lambda w, role: {"user": {"username": "mia", "displayName": "Mia"}},
        changes=False,
    ),
    case(
        "rooms",
        ROOMS,
        lambda w: {},
        ALL_SIGNED_IN_OK,
        lambda w, role: {"rooms": names("Secret", "Lobby") if role in IN_BOTH_ROOMS else names("Lobby")},
        changes=False,
    ),
    case(
        "room public",
        ROOM,
        lambda w: {"id": gid("Room", w.public.pk)},
        ALL_SIGNED_IN_OK,
        lambda w, role: {"room": {"name": "Lobby", "myRole": role_name(role) if role in IN_BOTH_ROOMS else None}},
        changes=False,
    ),
    case(
        "room private",
        ROOM,
        lambda w: {"id": gid("Room", w.private.pk)},
        {"outsider": "NOT_FOUND", "staff": "NOT_FOUND", "banned": "NOT_FOUND", **IN_BOTH_OK},
        lambda w, role: {"room": {"name": "Secret", "myRole": role_name(role)}},
        changes=False,
    ),
    case(
        "messages public",
        MESSAGES,
        lambda w: {"roomId": gid("Room", w.public.pk)},
        {"outsider": "FORBIDDEN", "staff": "FORBIDDEN", "banned": "FORBIDDEN", **IN_BOTH_OK},
        lambda w, role: {"messages": {"edges": [{"node": {"text": "welcome"}}, {"node": {"text": "hello lobby"}}]}},
        changes=False,
    ),
    case(
        "messages private",
        MESSAGES,
        lambda w: {"roomId": gid("Room", w.private.pk)},
        {"outsider": "NOT_FOUND", "staff": "NOT_FOUND", "banned": "NOT_FOUND", **IN_BOTH_OK},
        lambda w, role: {"messages": {"edges": [{"node": {"text": "psst"}}]}},
        changes=False,
    ),
    # --- room mutations
    case(
        "createRoom",
        CREATE_ROOM,
        lambda w: {"input": {"name": "New", "memberIds": [gid("User", w.member.pk)]}},
        ALL_SIGNED_IN_OK,
        lambda w, role: {"createRoom": {"name": "New", "myRole": "OWNER"}},
    ),
    case(
        "updateRoom public",
        UPDATE_ROOM,
        lambda w: {"input": {"roomId": gid("Room", w.public.pk), "topic": "New topic"}},
        {"outsider": "FORBIDDEN", "banned": "FORBIDDEN", **NOT_MODERATORS, "admin": None, "owner": None, "staff": None},
        lambda w, role: {"updateRoom": {"name": "Lobby", "topic": "New topic"}},
    ),
    case(
        "updateRoom private",
        UPDATE_ROOM,
        lambda w: {"input": {"roomId": gid("Room", w.private.pk), "name": "Renamed"}},
        {"outsider": "NOT_FOUND", "banned": "NOT_FOUND", **NOT_MODERATORS, "admin": None, "owner": None, "staff": None},
        lambda w, role: {"updateRoom": {"name": "Renamed", "topic": ""}},
    ),
    case(
        "updateRoom avatar cleared",
        UPDATE_ROOM,
        lambda w: {"input": {"roomId": gid("Room", w.public.pk), "avatarId": None}},
        PUBLIC_MODERATION,
        lambda w, role: {"updateRoom": {"name": "Lobby", "topic": "Say hi"}},
        changes=False,
    ),
    case(
        "updateProfile avatar cleared",
        UPDATE_PROFILE_AVATAR,
        lambda w: {"input": {"avatarId": None}},
        ALL_SIGNED_IN_OK,
        lambda w, role: {"updateProfile": {"username": w.user(role).username, "avatarUrl": None}},
        changes=False,
    ),
    case(
        "deleteRoom",
        DELETE_ROOM,
        lambda w: {"roomId": gid("Room", w.public.pk)},
        {
            "outsider": "FORBIDDEN",
            "banned": "FORBIDDEN",
            **NOT_MODERATORS,
            "admin": "FORBIDDEN",
            "owner": None,
            "staff": None,
        },
        lambda w, role: {"deleteRoom": gid("Room", w.public.pk)},
    ),
    case(
        "deleteRoom private",
        DELETE_ROOM,
        lambda w: {"roomId": gid("Room", w.private.pk)},
        {
            "outsider": "NOT_FOUND",
            "banned": "NOT_FOUND",
            **NOT_MODERATORS,
            "admin": "FORBIDDEN",
            "owner": None,
            "staff": None,
        },
        lambda w, role: {"deleteRoom": gid("Room", w.private.pk)},
    ),
    case(
        "joinRoom public",
        JOIN_ROOM,
        lambda w: {"roomId": gid("Room", w.public.pk)},
        {**ALL_SIGNED_IN_OK, "banned": "FORBIDDEN"},
        lambda w, role: {"joinRoom": {"name": "Lobby", "myRole": role_name(role) if role in MEMBERS_OK else "MEMBER"}},
    ),
    case(
        "joinRoom private",
        JOIN_ROOM,
        lambda w: {"roomId": gid("Room", w.private.pk)},
        {"outsider": "NOT_FOUND", "staff": "NOT_FOUND", "banned": "NOT_FOUND", **IN_BOTH_OK},
        lambda w, role: {"joinRoom": {"name": "Secret", "myRole": role_name(role)}},
    ),
    case(
        "leaveRoom",
        LEAVE_ROOM,
        lambda w: {"roomId": gid("Room", w.public.pk)},
        {"outsider": "FORBIDDEN", "staff": "FORBIDDEN", "banned": "FORBIDDEN", **IN_BOTH_OK},
        lambda w, role: {"leaveRoom": gid("Room", w.public.pk)},
    ),
    case(
        "leaveRoom private",
        LEAVE_ROOM,
        lambda w: {"roomId": gid("Room", w.private.pk)},
        {"outsider": "NOT_FOUND", "staff": "NOT_FOUND", "banned": "NOT_FOUND", **IN_BOTH_OK},
        lambda w, role: {"leaveRoom": gid("Room", w.private.pk)},
    ),
    case(
        "addMember private",
        ADD_MEMBER,
        lambda w: {"roomId": gid("Room", w.private.pk), "userId": gid("User", w.other_member.pk)},
        {"outsider": "NOT_FOUND", "banned": "NOT_FOUND", **NOT_MODERATORS, "admin": None, "owner": None, "staff": None},
        lambda w, role: {"addMember": {"memberCount": 6}},
    ),
    case(
        "removeMember",
        REMOVE_MEMBER,
        lambda w: {"roomId": gid("Room", w.public.pk), "userId": gid("User", w.other_member.pk)},
        {"outsider": "FORBIDDEN", "banned": "FORBIDDEN", **NOT_MODERATORS, "admin": None, "owner": None, "staff": None},
        lambda w, role: {"removeMember": {"memberCount": 5}},
    ),
    case(
        "removeMember admin",
        REMOVE_MEMBER,
        lambda w: {"roomId": gid("Room", w.public.pk), "userId": gid("User", w.admin.pk)},
        {"outsider": "FORBIDDEN", "banned": "FORBIDDEN", **NOT_MODERATORS, "admin": None, "owner": None, "staff": None},
        lambda w, role: {"removeMember": {"memberCount": 5}},
    ),
    case(
        "removeMember owner",
        REMOVE_MEMBER,
        lambda w: {"roomId": gid("Room", w.public.pk), "userId": gid("User", w.owner.pk)},
        {
            "outsider": "FORBIDDEN",
            "banned": "FORBIDDEN",
            **NOT_MODERATORS,
            "admin": "FORBIDDEN",
            "owner": None,
            "staff": "FORBIDDEN",
        },
        lambda w, role: {"removeMember": {"memberCount": 5}},
    ),
    case(
        "setMemberRole",
        SET_MEMBER_ROLE,
        lambda w: {"roomId": gid("Room", w.public.pk), "userId": gid("User", w.other_member.pk), "role": "ADMIN"},
        {
            "outsider": "FORBIDDEN",
            "banned": "FORBIDDEN",
            **NOT_MODERATORS,
            "admin": "FORBIDDEN",
            "owner": None,
            "staff": None,
        },
        lambda w, role: {"setMemberRole": {"members": lobby_members(max="ADMIN")}},
    ),
    case(
        "setMemberRole private",
        SET_MEMBER_ROLE,
        lambda w: {"roomId": gid("Room", w.private.pk), "userId": gid("User", w.admin.pk), "role": "MEMBER"},
        {
            "outsider": "NOT_FOUND",
            "banned": "NOT_FOUND",
            **NOT_MODERATORS,
            "admin": "FORBIDDEN",
            "owner": None,
            "staff": None,
        },
        lambda w, role: {
            "setMemberRole": {
                "members": [
                    {"user": {"username": "olga"}, "role": "OWNER"},
                    {"user": {"username": "adam"}, "role": "MEMBER"},
                    {"user": {"username": "mia"}, "role": "MEMBER"},
                    {"user": {"username": "moe"}, "role": "MEMBER"},
                    {"user": {"username": "bob"}, "role": "MEMBER"},
                ]
            }
        },
    ),
    case(
        "setMemberRole owner",
        SET_MEMBER_ROLE,
        lambda w: {"roomId": gid("Room", w.public.pk), "userId": gid("User", w.member.pk), "role": "OWNER"},
        {
            "outsider": "FORBIDDEN",
            "banned": "FORBIDDEN",
            **NOT_MODERATORS,
            "admin": "FORBIDDEN",
            "owner": None,
            "staff": "FORBIDDEN",
        },
        lambda w, role: {"setMemberRole": {"members": lobby_members(olga="ADMIN", mia="OWNER")}},
    ),
    case(
        "startDirectChat",
        START_DIRECT_CHAT,
        lambda w: {"userId": gid("User", w.member.pk)},
        {
            "outsider": None,
            "member": "BAD_USER_INPUT",
            "admin": None,
            "owner": None,
            "staff": None,
            "banned": None,
            "muted": None,
            "blocked": "FORBIDDEN",
        },
        lambda w, role: {"startDirectChat": {"kind": "DIRECT", "memberCount": 2}},
    ),
    # --- message mutations
    case(
        "sendMessage public",
        SEND_MESSAGE,
        lambda w: {"input": {"roomId": gid("Room", w.public.pk), "text": "  hi  "}},
        {"outsider": "FORBIDDEN", "staff": "FORBIDDEN", "banned": "FORBIDDEN", **IN_BOTH_OK, "muted": "FORBIDDEN"},
        lambda w, role: {"sendMessage": {"text": "hi", "sender": {"username": w.user(role).username}}},
    ),
    case(
        "sendMessage private",
        SEND_MESSAGE,
        lambda w: {"input": {"roomId": gid("Room", w.private.pk), "text": "hi"}},
        {"outsider": "NOT_FOUND", "staff": "NOT_FOUND", "banned": "NOT_FOUND", **IN_BOTH_OK, "muted": "FORBIDDEN"},
        lambda w, role: {"sendMessage": {"text": "hi", "sender": {"username": w.user(role).username}}},
    ),
    case(
        "editMessage",
        EDIT_MESSAGE,
        lambda w: {"id": gid("Message", w.message.pk), "text": "edited"},
        {
            "outsider": "NOT_FOUND",
            "staff": "NOT_FOUND",
            "banned": "NOT_FOUND",
            "member": None,
            "admin": "FORBIDDEN",
            "owner": "FORBIDDEN",
            "muted": "FORBIDDEN",
            "blocked": "FORBIDDEN",
        },
        lambda w, role: {"editMessage": {"text": "edited"}},
    ),
    case(
        "deleteMessage",
        DELETE_MESSAGE,
        lambda w: {"id": gid("Message", w.message.pk)},
        {
            "outsider": "NOT_FOUND",
            "staff": None,
            "banned": "NOT_FOUND",
            **MEMBERS_OK,
            **dict.fromkeys(OTHER_MEMBERS, "FORBIDDEN"),
        },
        lambda w, role: {"deleteMessage": {"text": "", "isDeleted": True}},
    ),
    case(
        "deleteMessage of the owner",
        DELETE_MESSAGE,
        lambda w: {"id": gid("Message", w.owner_message.pk)},
        {
            "outsider": "NOT_FOUND",
            "staff": None,
            "banned": "NOT_FOUND",
            "member": "FORBIDDEN",
            "admin": None,
            "owner": None,
            **dict.fromkeys(OTHER_MEMBERS, "FORBIDDEN"),
        },
        lambda w, role: {"deleteMessage": {"text": "", "isDeleted": True}},
    ),
    case(
        "deleteMessage private",
        DELETE_MESSAGE,
        lambda w: {"id": gid("Message", w.private_message.pk)},
        {
            "outsider": "NOT_FOUND",
            "staff": None,
            "banned": "NOT_FOUND",
            **MEMBERS_OK,
            **dict.fromkeys(OTHER_MEMBERS, "FORBIDDEN"),
        },
        lambda w, role: {"deleteMessage": {"text": "", "isDeleted": True}},
    ),
    case(
        "markRead",
        MARK_READ,
        lambda w: {"roomId": gid("Room", w.public.pk), "messageId": gid("Message", w.owner_message.pk)},
        {"outsider": "FORBIDDEN", "staff": "FORBIDDEN", "banned": "FORBIDDEN", **IN_BOTH_OK},
        lambda w, role: {"markRead": {"unreadCount": 0}},
    ),
    # --- search: the caller's own rooms only
    case(
        "searchMessages",
        SEARCH_MESSAGES,
        lambda w: {"query": "HELLO"},
        ALL_SIGNED_IN_OK,
        lambda w, role: {
            "searchMessages": {"totalCount": 1, "edges": [{"node": {"text": "hello lobby"}}]}
            if role in IN_BOTH_ROOMS
            else {"totalCount": 0, "edges": []}
        },
        changes=False,
    ),
    case(
        "searchMessages private room",
        SEARCH_MESSAGES,
        lambda w: {"query": "psst", "roomId": gid("Room", w.private.pk)},
        {"outsider": "NOT_FOUND", "staff": "NOT_FOUND", "banned": "NOT_FOUND", **IN_BOTH_OK},
        lambda w, role: {"searchMessages": {"totalCount": 1, "edges": [{"node": {"text": "psst"}}]}},
        changes=False,
    ),
    case(
        "searchMessages public room not joined",
        SEARCH_MESSAGES,
        lambda w: {"query": "hello", "roomId": gid("Room", w.public.pk)},
        {"outsider": "FORBIDDEN", "staff": "FORBIDDEN", "banned": "FORBIDDEN", **IN_BOTH_OK},
        lambda w, role: {"searchMessages": {"totalCount": 1, "edges": [{"node": {"text": "hello lobby"}}]}},
        changes=False,
    ),
    # --- notifications: everyone has their own inbox
    case(
        "notifications",
        NOTIFICATIONS,
        lambda w: {},
        ALL_SIGNED_IN_OK,
        lambda w, role: {
            "notifications": {
                "totalCount": len(ADDED_TO.get(role, [])),
                "edges": [{"node": {"kind": "ADDED_TO_ROOM", "room": {"name": n}}} for n in ADDED_TO.get(role, [])],
            }
        },
        changes=False,
    ),
    case(
        "markNotificationsRead",
        MARK_NOTIFICATIONS_READ,
        lambda w: {},
        ALL_SIGNED_IN_OK,
        lambda w, role: {"markNotificationsRead": len(ADDED_TO.get(role, []))},
    ),
    case(
        "setRoomNotificationLevel",
        SET_ROOM_NOTIFICATION_LEVEL,
        lambda w: {"roomId": gid("Room", w.public.pk)},
        {"outsider": "FORBIDDEN", "staff": "FORBIDDEN", "banned": "FORBIDDEN", **IN_BOTH_OK},
        lambda w, role: {"setRoomNotificationLevel": {"name": "Lobby", "notificationLevel": "NONE"}},
    ),
    case(
        "setRoomNotificationLevel private",
        SET_ROOM_NOTIFICATION_LEVEL,
        lambda w: {"roomId": gid("Room", w.private.pk)},
        {"outsider": "NOT_FOUND", "staff": "NOT_FOUND", "banned": "NOT_FOUND", **IN_BOTH_OK},
        lambda w, role: {"setRoomNotificationLevel": {"name": "Secret", "notificationLevel": "NONE"}},
    ),
    *MODERATION_CASES,
]


# --- reactions, threads, pins, edit history

ADD_REACTION = (
    "mutation AddReaction($messageId: ID!, $emoji: String!) "
    "{ addReaction(messageId: $messageId, emoji: $emoji) { reactions { emoji count reactedByMe } } }"
)
REMOVE_REACTION = (
    "mutation RemoveReaction($messageId: ID!, $emoji: String!) "
    "{ removeReaction(messageId: $messageId, emoji: $emoji) { reactions { emoji count reactedByMe } } }"
)
PIN_MESSAGE = "mutation PinMessage($id: ID!) { pinMessage(id: $id) { text pinnedBy { username } } }"
UNPIN_MESSAGE = "mutation UnpinMessage($id: ID!) { unpinMessage(id: $id) { text pinnedAt } }"
PINNED_MESSAGES = "query Pinned($id: ID!) { room(id: $id) { pinnedMessages(first: 5) { edges { node { text pinnedBy { username } } } } } }"
THREADED_HISTORY = (
    "query Threaded($roomId: ID!) { messages(roomId: $roomId, first: 10) { edges { node { text replyCount "
    "reactions { emoji count } edits { text } replies(first: 5) { edges { node { text } } } } } } }"
)
REPLY = "mutation Reply($input: SendMessageInput!) { sendMessage(input: $input) { text replyTo { text replyCount } } }"
PIN_RIGHTS = {
    "outsider": "NOT_FOUND",
    "staff": "NOT_FOUND",
    "banned": "NOT_FOUND",
    **NOT_MODERATORS,
    "admin": None,
    "owner": None,
}
MESSAGE_MEMBERS_OK = {"outsider": "NOT_FOUND", "staff": "NOT_FOUND", "banned": "NOT_FOUND", **IN_BOTH_OK}
# A muted member reads but does not react.
REACT_OK = {**MESSAGE_MEMBERS_OK, "muted": "FORBIDDEN"}


def react_as_owner(w: World) -> None:
    reactions.add_reaction(w.owner, w.message.pk, "🎉")


def pin_as_owner(w: World) -> None:
    pins.pin_message(w.owner, w.owner_message.pk)


def converse(w: World) -> None:
    """A reaction, an edit and a reply on the member's lobby message."""
    reactions.add_reaction(w.owner, w.message.pk, "🎉")
    messages.edit_message(w.member, w.message.pk, "hello lobby!")
    messages.send_message(w.admin, w.public.pk, "re", thread_id=w.message.pk)


CASES += [
    case(
        "addReaction",
        ADD_REACTION,
        lambda w: {"messageId": gid("Message", w.message.pk), "emoji": "👍"},
        REACT_OK,
        lambda w, role: {"addReaction": {"reactions": [{"emoji": "👍", "count": 1, "reactedByMe": True}]}},
    ),
    case(
        "addReaction private",
        ADD_REACTION,
        lambda w: {"messageId": gid("Message", w.private_message.pk), "emoji": "👍"},
        REACT_OK,
        lambda w, role: {"addReaction": {"reactions": [{"emoji": "👍", "count": 1, "reactedByMe": True}]}},
    ),
    case(
        "removeReaction",
        REMOVE_REACTION,
        lambda w: {"messageId": gid("Message", w.message.pk), "emoji": "🎉"},
        MESSAGE_MEMBERS_OK,
        lambda w, role: {
            "removeReaction": {
                "reactions": [] if role == "owner" else [{"emoji": "🎉", "count": 1, "reactedByMe": False}]
            }
        },
        setup=react_as_owner,
    ),
    case(
        "pinMessage",
        PIN_MESSAGE,
        lambda w: {"id": gid("Message", w.message.pk)},
        PIN_RIGHTS,
        lambda w, role: {"pinMessage": {"text": "hello lobby", "pinnedBy": {"username": w.user(role).username}}},
    ),
    case(
        "pinMessage private",
        PIN_MESSAGE,
        lambda w: {"id": gid("Message", w.private_message.pk)},
        PIN_RIGHTS,
        lambda w, role: {"pinMessage": {"text": "psst", "pinnedBy": {"username": w.user(role).username}}},
    ),
    case(
        "unpinMessage",
        UNPIN_MESSAGE,
        lambda w: {"id": gid("Message", w.owner_message.pk)},
        PIN_RIGHTS,
        lambda w, role: {"unpinMessage": {"text": "welcome", "pinnedAt": None}},
        setup=pin_as_owner,
    ),
    case(
        "pinnedMessages",
        PINNED_MESSAGES,
        lambda w: {"id": gid("Room", w.public.pk)},
        ALL_SIGNED_IN_OK,
        lambda w, role: {
            "room": {
                "pinnedMessages": {
                    "edges": [{"node": {"text": "welcome", "pinnedBy": {"username": "olga"}}}]
                    if role in IN_BOTH_ROOMS
                    else []
                }
            }
        },
        changes=False,
        setup=pin_as_owner,
    ),
    case(
        "messages with reactions, edits and replies",
        THREADED_HISTORY,
        lambda w: {"roomId": gid("Room", w.public.pk)},
        {"outsider": "FORBIDDEN", "staff": "FORBIDDEN", "banned": "FORBIDDEN", **IN_BOTH_OK},
        lambda w, role: {
            "messages": {
                "edges": [
                    {
                        "node": {
                            "text": text,
                            "replyCount": count,
                            "reactions": reacted,
                            "edits": edits,
                            "replies": {"edges": replies},
                        }
                    }
                    for text, count, reacted, edits, replies in [
                        ("re", 0, [], [], []),
                        ("welcome", 0, [], [], []),
                        (
                            "hello lobby!",
                            1,
                            [{"emoji": "🎉", "count": 1}],
                            [{"text": "hello lobby"}],
                            [{"node": {"text": "re"}}],
                        ),
                    ]
                ]
            }
        },
        changes=False,
        setup=converse,
    ),
    case(
        "sendMessage in a thread",
        REPLY,
        lambda w: {
            "input": {"roomId": gid("Room", w.public.pk), "text": "re", "threadId": gid("Message", w.message.pk)}
        },
        {"outsider": "FORBIDDEN", "staff": "FORBIDDEN", "banned": "FORBIDDEN", **IN_BOTH_OK, "muted": "FORBIDDEN"},
        lambda w, role: {"sendMessage": {"text": "re", "replyTo": {"text": "hello lobby", "replyCount": 1}}},
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("query", "variables", "outcomes", "answer", "changes", "setup"), CASES)
def test_access_matrix(gql, world: World, role, query, variables, outcomes, answer, changes, setup):
    if setup is not None:
        setup(world)
    before = db_state()
    body = gql(query, variables(world), user=world.user(role))
    expected_code = outcomes[role]
    if expected_code is None:
        assert body == {"data": answer(world, role)}
        if not changes:
            assert db_state() == before
    else:
        assert [e["extensions"]["code"] for e in body["errors"]] == [expected_code], body
        assert body["data"] is None or all(v is None for v in body["data"].values())
        assert db_state() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_node_lookup_follows_room_visibility(gql, world: World, role):
    body = gql(NODE, {"id": gid("Room", world.private.pk)}, user=world.user(role))
    expected = {"name": "Secret"} if role in IN_BOTH_ROOMS else None
    assert body == {"data": {"node": expected}}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (ROOM, {"id": "not base64!"}),
        (ROOM, {"id": gid("Room", "x")}),
        (ROOM, {"id": gid("Message", 1)}),
        (ROOM, {"id": gid("Room", 10**30)}),
        (JOIN_ROOM, {"roomId": "garbage"}),
        (MESSAGES, {"roomId": gid("User", 1)}),
        (SEND_MESSAGE, {"input": {"roomId": "@@", "text": "x"}}),
        (EDIT_MESSAGE, {"id": gid("Message", -1), "text": "x"}),
    ],
)
def test_malformed_or_foreign_ids_answer_not_found_or_bad_input(gql, world: World, query, variables):
    before = db_state()
    body = gql(query, variables, user=world.member)
    assert [e["extensions"]["code"] for e in body["errors"]] in (["NOT_FOUND"], ["BAD_USER_INPUT"]), body
    assert db_state() == before


@pytest.mark.django_db
def test_a_deleted_room_answers_like_a_missing_one(gql, world: World):
    Room.objects.filter(pk=world.public.pk).update(deleted_at="2026-01-01T00:00:00Z")
    body = gql(ROOM, {"id": gid("Room", world.public.pk)}, user=world.owner)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert body["errors"][0]["message"] == "Room not found."
