from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry_django
from django.conf import settings
from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Now
from strawberry import relay
from strawberry.types import Info
from strawberry_django.optimizer import optimize

from chat import access
from chat.errors import BadUserInput, Forbidden
from chat.models import Ban, Invite, Membership, Message, Mute, Notification, Report, Room
from chat.services import avatars
from schema.accounts.types import UserType
from schema.connections import PageConnection
from schema.context import viewer
from schema.notifications.types import NotificationLevelEnum

if TYPE_CHECKING:
    from schema.messages.types import MessageType
    from schema.moderation.types import InviteType, ReportType, RoomBanType

LazyBan = Annotated["RoomBanType", strawberry.lazy("schema.moderation.types")]
LazyReport = Annotated["ReportType", strawberry.lazy("schema.moderation.types")]
LazyInvite = Annotated["InviteType", strawberry.lazy("schema.moderation.types")]


@strawberry.enum(name="RoomKind", description="What kind of room this is.")
class RoomKind(Enum):
    GROUP = strawberry.enum_value("group", description="A named room with any number of members.")
    DIRECT = strawberry.enum_value("direct", description="A one-to-one chat between two users.")


@strawberry.enum(name="RoomRole", description="A member's role in a room.")
class RoomRole(Enum):
    OWNER = strawberry.enum_value("owner", description="Created the room (or inherited it); may delete it.")
    ADMIN = strawberry.enum_value("admin", description="May change the room and add or remove members.")
    MEMBER = strawberry.enum_value("member", description="May read and send messages.")


def _viewer_id(info: Info) -> int | None:
    user = info.context.user
    return user.pk if user.is_authenticated else None


def member_count_expression() -> Coalesce:
    counts = access.listed_memberships().filter(room=OuterRef("pk")).order_by().values("room").annotate(n=Count("*"))
    return Coalesce(Subquery(counts.values("n"), output_field=IntegerField()), Value(0))


def unread_count_expression(info: Info):
    """Messages after the caller's read position (or after they joined), not their own, not deleted."""
    user_id = _viewer_id(info)
    if user_id is None:
        return Value(0, output_field=IntegerField())
    position = Membership.objects.filter(room=OuterRef("room"), user_id=user_id).filter(
        Q(last_read_message__isnull=True, joined_at__lte=OuterRef("created_at"))
        | Q(last_read_message__created_at__lt=OuterRef("created_at"))
        | Q(last_read_message__created_at=OuterRef("created_at"), last_read_message_id__lt=OuterRef("pk"))
    )
    unread = (
        Message.objects.filter(room=OuterRef("pk"), deleted_at__isnull=True)
        .exclude(sender_id=user_id)
        .filter(Exists(position))
        .order_by()
        .values("room")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(unread, output_field=IntegerField()), Value(0))


def unread_mention_count_expression(info: Info):
    """The caller's unread MENTIONED notifications in the room."""
    user_id = _viewer_id(info)
    if user_id is None:
        return Value(0, output_field=IntegerField())
    unread = (
        Notification.objects.filter(
            room=OuterRef("pk"), user_id=user_id, kind=Notification.Kind.MENTIONED, read_at__isnull=True
        )
        .order_by()
        .values("room")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(unread, output_field=IntegerField()), Value(0))


def notification_level_expression(info: Info):
    user_id = _viewer_id(info)
    return Subquery(Membership.objects.filter(room=OuterRef("pk"), user_id=user_id).values("notification_level")[:1])


def my_role_expression(info: Info):
    user_id = _viewer_id(info)
    return Subquery(Membership.objects.filter(room=OuterRef("pk"), user_id=user_id).values("role")[:1])


def _first_argument(info: Info, default: int) -> int:
    field = info.selected_fields[0] if info.selected_fields else None
    first = (field.arguments or {}).get("first", default) if field else default
    if first is None:
        first = default
    try:
        first = int(first)  # a literal in the query arrives as its source text
    except (TypeError, ValueError):
        raise BadUserInput("`first` must be an integer.", fields={"first": ["Not an integer."]}) from None
    if not 0 <= first <= settings.PAGE_SIZE_MAX:
        raise BadUserInput(
            f"`first` must be between 0 and {settings.PAGE_SIZE_MAX}.", fields={"first": ["Out of range."]}
        )
    return first


def members_prefetch(info: Info) -> Prefetch:
    first = _first_argument(info, settings.PAGE_SIZE_DEFAULT)
    members = optimize(access.listed_memberships().order_by("joined_at", "pk"), info)
    return Prefetch("memberships", queryset=members[:first], to_attr="members_page")


def last_message_prefetch(info: Info) -> Prefetch:
    # Only members read a room's messages: for anyone else the list stays empty.
    messages = optimize(access.messages_visible_to(info.context.user).order_by("-created_at", "-pk"), info)
    return Prefetch("messages", queryset=messages[:1], to_attr="last_messages")


def _active_mute(room=None, user=None) -> QuerySet[Mute]:
    """A member's mute that still holds (of the outer query's membership by default)."""
    room = OuterRef("room") if room is None else room
    user = OuterRef("user") if user is None else user
    return Mute.objects.filter(room=room, user=user).filter(Q(until__isnull=True) | Q(until__gt=Now()))


@strawberry_django.type(Membership, name="RoomMember")
class RoomMemberType(relay.Node):
    """A user's membership of a room."""

    user: UserType = strawberry_django.field(description="The member.")
    joined_at: datetime = strawberry_django.field(description="When the user joined the room.")

    @strawberry_django.field(only=["role"], description="The member's role in the room.")
    def role(self, root: Membership) -> RoomRole:
        return RoomRole(root.role)

    # --- moderation
    @strawberry_django.field(
        annotate={"is_muted_now": lambda info: Exists(_active_mute())},
        description="Whether the member is muted: they read but cannot write (see `muteMember`).",
    )
    def is_muted(self, root: Membership) -> bool:
        if hasattr(root, "is_muted_now"):
            return root.is_muted_now
        return _active_mute(root.room_id, root.user_id).exists()

    @strawberry_django.field(
        annotate={"muted_until_now": lambda info: Subquery(_active_mute().values("until")[:1])},
        description="When the mute ends; null if not muted or muted without an end (see `isMuted`).",
    )
    def muted_until(self, root: Membership) -> datetime | None:
        if hasattr(root, "muted_until_now"):
            return root.muted_until_now
        return _active_mute(root.room_id, root.user_id).values_list("until", flat=True).first()

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Membership], info: Info, **kwargs) -> QuerySet[Membership]:
        return queryset & access.memberships_visible_to(viewer(info))


@strawberry_django.type(Room, name="Room")
class RoomType(relay.Node):
    """A group room or a direct chat. Private rooms are visible to their members only."""

    name: str = strawberry_django.field(
        description="The room's name. Direct chats are named after their two members' usernames."
    )
    topic: str = strawberry_django.field(description="What the room is about; may be empty.")
    is_private: bool = strawberry_django.field(
        description="Private rooms are joined by invitation only (`addMember`) and hidden from everyone else."
    )
    created_at: datetime = strawberry_django.field(description="When the room was created.")
    updated_at: datetime = strawberry_django.field(description="When the room's name, topic or privacy last changed.")
    created_by: UserType | None = strawberry_django.field(
        description="Who created the room; null if that account is gone."
    )
    member_count: int = strawberry_django.field(
        annotate=member_count_expression(), description="How many members the room has."
    )
    unread_count: int = strawberry_django.field(
        annotate=unread_count_expression,
        description=(
            "Messages you have not read yet: sent by others after your read position (see `markRead`) or, "
            "before your first `markRead`, after you joined. Deleted messages do not count; 0 if you are not a member."
        ),
    )

    unread_mention_count: int = strawberry_django.field(
        annotate=unread_mention_count_expression,
        description=(
            "Your unread mentions in this room (MENTIONED notifications not yet marked read, by "
            "`markNotificationsRead` or by `markRead` past their message); 0 if you are not a member."
        ),
    )

    @strawberry_django.field(
        annotate={"notification_level": notification_level_expression},
        description=(
            "What you are notified of in this room (`setRoomNotificationLevel`); null if you are not a member."
        ),
    )
    def notification_level(self, root: Room) -> NotificationLevelEnum | None:
        return NotificationLevelEnum(root.notification_level) if root.notification_level else None

    @strawberry_django.field(
        only=["avatar_id"],
        description=(
            "The room's picture (`updateRoom(input: {avatarId})`), square, `size` 64 or 256 pixels (default 256): "
            "a signed URL for you alone that expires after a few minutes. Null if none."
        ),
    )
    def avatar_url(self, root: Room, info: Info, size: int | None = None) -> str | None:
        return avatars.avatar_path(viewer(info), root.avatar_id, avatars.clean_size(size))

    @strawberry_django.field(only=["kind"], description="Whether this is a group room or a direct chat.")
    def kind(self, root: Room) -> RoomKind:
        return RoomKind(root.kind)

    @strawberry_django.field(
        annotate={"my_role": my_role_expression},
        description="Your role in the room, or null if you are not a member.",
    )
    def my_role(self, root: Room) -> RoomRole | None:
        return RoomRole(root.my_role) if root.my_role else None

    @strawberry_django.field(
        prefetch_related=[members_prefetch],
        description=(
            "Members in the order they joined, with their roles: the first `first` of them "
            "(default 20, at most 100). `memberCount` tells how many there are in all."
        ),
    )
    def members(self, root: Room, info: Info, first: int | None = None) -> list[RoomMemberType]:
        page = getattr(root, "members_page", None)
        if page is not None:
            return page
        limit = _first_argument(info, settings.PAGE_SIZE_DEFAULT)
        listed = access.listed_memberships().filter(room=root).select_related("user")
        return list(listed.order_by("joined_at", "pk")[:limit])

    @strawberry_django.field(
        prefetch_related=[last_message_prefetch],
        description=(
            "The newest message (a deleted one shows as a tombstone); null if none or if you are not a member."
        ),
    )
    def last_message(
        self, root: Room, info: Info
    ) -> Annotated[MessageType, strawberry.lazy("schema.messages.types")] | None:
        page = getattr(root, "last_messages", None)
        if page is None:
            page = list(access.messages_visible_to(viewer(info)).filter(room=root).order_by("-created_at", "-pk")[:1])
        return page[0] if page else None

    @strawberry_django.connection(
        PageConnection[Annotated["MessageType", strawberry.lazy("schema.messages.types")]],
        description=(
            "Pinned messages, most recently pinned first (at most 50 per room; see `pinMessage`). "
            "Empty if you are not a member."
        ),
    )
    def pinned_messages(self, root: Room, info: Info) -> QuerySet[Message]:
        return (
            access.messages_visible_to(viewer(info))
            .filter(room_id=root.pk, pinned_at__isnull=False)
            .order_by("-pinned_at", "-pk")
        )

    # --- moderation
    slow_mode_seconds: int = strawberry_django.field(
        description="Members other than owners and admins may send one message per this many seconds; 0: off."
    )

    @strawberry_django.connection(
        PageConnection[LazyBan],
        description="Users banned from the room, newest first. Owners, admins and staff only (FORBIDDEN).",
    )
    def bans(self, root: Room, info: Info) -> QuerySet[Ban]:
        _require_moderator(info, root)
        return Ban.objects.filter(room=root).order_by("-created_at", "-pk")

    @strawberry_django.connection(
        PageConnection[LazyReport],
        description="Open (unresolved) reports of the room's messages, oldest first. Owners, admins and staff only.",
    )
    def reports(self, root: Room, info: Info) -> QuerySet[Report]:
        _require_moderator(info, root)
        return Report.objects.filter(room=root, resolved_at__isnull=True).order_by("created_at", "pk")

    @strawberry_django.field(
        description=(
            "The room's invite links, newest first (revoked and expired ones too): the first `first` "
            "(default 20, at most 100). Owners, admins and staff only (FORBIDDEN)."
        )
    )
    def invites(self, root: Room, info: Info, first: int | None = None) -> list[LazyInvite]:
        from schema.moderation.types import InviteType

        _require_moderator(info, root)
        limit = _first_argument(info, settings.PAGE_SIZE_DEFAULT)
        return [
            InviteType.from_model(i) for i in Invite.objects.filter(room=root).order_by("-created_at", "-pk")[:limit]
        ]

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Room], info: Info, **kwargs) -> QuerySet[Room]:
        return queryset & access.rooms_visible_to(viewer(info))


def _require_moderator(info: Info, room: Room) -> None:
    user = viewer(info)
    if not access.is_moderator(user, access.membership_of(user, room.pk)):
        raise Forbidden("Only the room's owner, admins and staff see this.")
