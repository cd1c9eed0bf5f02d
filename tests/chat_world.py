"""A small chat world built through the real services, shared by the room and
message tests: one user per role, a public and a private room, a few messages,
and a snapshot of everything a denied operation must leave unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from strawberry import relay

from chat.models import (
    Attachment,
    Ban,
    Block,
    Event,
    Invite,
    Membership,
    Message,
    MessageEdit,
    Mute,
    Notification,
    Reaction,
    Report,
    Room,
    User,
)
from chat.services import messages, moderation, rooms


def gid(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


@dataclass
class World:
    owner: User
    admin: User
    member: User
    other_member: User
    outsider: User
    staff: User
    public: Room
    private: Room
    message: Message  # by `member` in the public room
    owner_message: Message  # by `owner` in the public room
    private_message: Message  # by `member` in the private room
    # Moderation roles (``with_moderation_roles``): banned from the lobby; muted in
    # both rooms; in both rooms and blocked by `member`.
    banned: User | None = None
    muted: User | None = None
    blocked: User | None = None
    report: Report | None = None  # by `other_member` of `owner_message`
    public_invite: Invite | None = None
    private_invite: Invite | None = None

    def user(self, role: str) -> User | None:
        return None if role == "anonymous" else getattr(self, role)


def fast_user(username: str, **fields) -> User:
    """A user without a password hash (hashing costs ~0.3 s per user; these sign in with tokens)."""
    fields.setdefault("email", f"{username}@example.com")
    return User.objects.create(username=username, password="!", **fields)


def build_world(make_user=None) -> World:
    make_user = fast_user
    owner = make_user("olga", display_name="Olga")
    admin = make_user("adam", display_name="Adam")
    member = make_user("mia", display_name="Mia")
    other_member = make_user("max", display_name="Max")
    outsider = make_user("otto", display_name="Otto")
    staff = make_user("sam", display_name="Sam", is_staff=True)
    public = rooms.create_room(owner, "Lobby", topic="Say hi", member_ids=[admin.pk, member.pk, other_member.pk])
    private = rooms.create_room(owner, "Secret", is_private=True, member_ids=[admin.pk, member.pk])
    Membership.objects.filter(user=admin).update(role=Membership.Role.ADMIN)
    message = messages.send_message(member, public.pk, "hello lobby")
    owner_message = messages.send_message(owner, public.pk, "welcome")
    private_message = messages.send_message(member, private.pk, "psst")
    return World(
        owner, admin, member, other_member, outsider, staff, public, private, message, owner_message, private_message
    )


def with_moderation_roles(world: World) -> World:
    """Add the banned, muted and blocked users (and a report and two invites) to ``world``."""
    world.banned = fast_user("bea", display_name="Bea")
    world.muted = fast_user("moe", display_name="Moe")
    world.blocked = fast_user("bob", display_name="Bob")
    for user in (world.muted, world.blocked):
        rooms.join_room(user, world.public.pk)
        rooms.add_member(world.owner, world.private.pk, user.pk)
    rooms.join_room(world.banned, world.public.pk)
    moderation.ban_member(world.owner, world.public.pk, world.banned.pk, "spam")
    for room in (world.public, world.private):
        moderation.mute_member(world.owner, room.pk, world.muted.pk)
    moderation.block_user(world.member, world.blocked.pk)
    world.report = moderation.report_message(world.other_member, world.owner_message.pk, "OTHER", "rude")
    world.public_invite = moderation.create_invite(world.owner, world.public.pk)
    world.private_invite = moderation.create_invite(world.owner, world.private.pk)
    return world


@pytest.fixture(name="world")
def world_fixture(db) -> World:
    return build_world()


def db_state() -> dict:
    """Everything an operation could change, for "a denial changes nothing" checks."""
    return {
        "users": list(User.objects.order_by("pk").values_list("pk", "username", "is_active")),
        "rooms": list(
            Room.objects.order_by("pk").values_list("pk", "name", "topic", "is_private", "deleted_at", "last_seq")
        ),
        "memberships": list(
            Membership.objects.order_by("pk").values_list(
                "room_id", "user_id", "role", "last_read_message_id", "notification_level"
            )
        ),
        "messages": list(
            Message.objects.order_by("pk").values_list(
                "pk", "text", "edited_at", "deleted_at", "reply_to_id", "reply_count", "pinned_at", "pinned_by_id"
            )
        ),
        "reactions": list(Reaction.objects.order_by("pk").values_list("pk", "message_id", "user_id", "emoji")),
        "edits": list(MessageEdit.objects.order_by("pk").values_list("pk", "message_id", "text")),
        "attachments": list(Attachment.objects.order_by("pk").values_list("pk", "message_id")),
        "events": list(Event.objects.order_by("pk").values_list("pk", "room_id", "seq", "kind")),
        "notifications": list(Notification.objects.order_by("pk").values_list("pk", "user_id", "read_at")),
        "bans": list(Ban.objects.order_by("pk").values_list("pk", "room_id", "user_id", "reason")),
        "mutes": list(Mute.objects.order_by("pk").values_list("pk", "room_id", "user_id", "until")),
        "blocks": list(Block.objects.order_by("pk").values_list("pk", "blocker_id", "blocked_id")),
        "reports": list(
            Report.objects.order_by("pk").values_list("pk", "message_id", "reporter_id", "text_snapshot", "resolved_at")
        ),
        "invites": list(Invite.objects.order_by("pk").values_list("pk", "room_id", "uses", "revoked_at")),
    }


def events_after(last_event_id: int) -> list[tuple[int, str, int, dict]]:
    """(room id, kind, seq, payload) of the events written after ``last_event_id``."""
    return [(e.room_id, e.kind, e.seq, e.payload) for e in Event.objects.filter(pk__gt=last_event_id).order_by("pk")]


def last_event_id() -> int:
    return Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def user_snap(user: User | None) -> dict | None:
    return None if user is None else {"id": user.pk, "username": user.username, "display_name": user.display_name}
