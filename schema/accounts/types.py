from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from chat import access, tokens
from chat.models import Block, User
from chat.services import avatars, presence
from schema.context import viewer


def unread_notification_count_expression(info: Info):
    """The caller's own unread notifications (0 for anyone else's row: the field shows null there)."""
    user = info.context.user
    if not user.is_authenticated:
        return Value(0, output_field=IntegerField())
    unread = (
        access.notifications_visible_to(user)
        .filter(user_id=OuterRef("pk"), read_at__isnull=True)
        .order_by()
        .values("user")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(unread, output_field=IntegerField()), Value(0))


def _presence_visible(info: Info):
    return access.presence_visible(viewer(info))


def _may_see_presence(root: User, info: Info) -> bool:
    """The presence rule (chat/access.py) for ``root``: the optimizer's annotation
    when the user came from an optimized queryset, one query otherwise."""
    visible = getattr(root, "presence_visible", None)
    if visible is None:
        me = viewer(info)
        visible = me.pk == root.pk or access.may_see_presence(me, root.pk)
    return bool(visible)


@strawberry_django.type(User, name="User")
class UserType(relay.Node):
    """A person on this chat server."""

    username: str = strawberry_django.field(description="Unique, case-insensitive login name.")
    display_name: str = strawberry_django.field(description="Name to show; may be empty (then show `username`).")
    bio: str = strawberry_django.field(description="A short text about the user.")
    date_joined: datetime = strawberry_django.field(description="When the account was created.")

    @strawberry_django.field(
        only=["email"], description="Email address: visible to the user themself and to staff only."
    )
    def email(self, root: User, info: Info) -> str | None:
        user = info.context.user
        if user.is_authenticated and (user.pk == root.pk or user.is_staff):
            return root.email
        return None

    @strawberry_django.field(only=["is_staff"], description="Whether the user is a staff member of this server.")
    def is_staff(self, root: User) -> bool:
        return root.is_staff

    @strawberry_django.field(
        only=["id"],
        annotate={"presence_visible": _presence_visible},
        description=(
            "Whether the user has at least one open WebSocket (live changes: `PresenceChanged` on `roomEvents`). "
            "Shown to the user themself and to people who share a room with them; false for anyone else."
        ),
    )
    def is_online(self, root: User, info: Info) -> bool:
        return _may_see_presence(root, info) and presence.is_online(root.pk)

    @strawberry_django.field(
        only=["last_seen_at"],
        annotate={"presence_visible": _presence_visible},
        description=(
            "When the user was last connected. Shown to the user themself and to people who share a room "
            "with them; null for anyone else."
        ),
    )
    def last_seen_at(self, root: User, info: Info) -> datetime | None:
        return root.last_seen_at if _may_see_presence(root, info) else None

    @strawberry_django.field(
        annotate={"unread_notifications": unread_notification_count_expression},
        description=(
            "How many of your notifications are unread (see `notifications(unreadOnly: true)`): "
            "on `me` only, null for anyone else."
        ),
    )
    def unread_notification_count(self, root: User, info: Info) -> int | None:
        user = info.context.user
        if not user.is_authenticated or user.pk != root.pk:
            return None
        if hasattr(root, "unread_notifications"):
            return root.unread_notifications
        # `me` hands over the signed-in user itself, not an optimized queryset.
        return access.notifications_visible_to(user).filter(read_at__isnull=True).count()

    @strawberry_django.field(
        only=["avatar_id"],
        description=(
            "The user's picture, square, `size` 64 or 256 pixels (default 256; other sizes are BAD_USER_INPUT): "
            "a signed URL for you alone, usable in `<img src>`, that expires after a few minutes. Null if none."
        ),
    )
    def avatar_url(self, root: User, info: Info, size: int | None = None) -> str | None:
        return avatars.avatar_path(viewer(info), root.avatar_id, avatars.clean_size(size))

    @strawberry_django.field(
        only=["id"],
        description=(
            "The users you have blocked (`blockUser`), most recent first: on your own user (`me`) only, "
            "empty on anyone else's."
        ),
    )
    def blocked_users(self, root: User, info: Info) -> list[UserType]:
        user = viewer(info)
        if not user.is_authenticated or user.pk != root.pk:
            return []
        blocks = (
            Block.objects.filter(blocker=user, blocked__is_active=True)
            .select_related("blocked")
            .order_by("-created_at", "-pk")
        )
        return [block.blocked for block in blocks[: settings.MAX_BLOCKED_USERS]]

    @classmethod
    def get_queryset(cls, queryset: QuerySet[User], info: Info, **kwargs) -> QuerySet[User]:
        return queryset & access.users_visible_to(viewer(info))


# --- Auth payloads (the django-graphql-jwt contract) --------------------------------


@strawberry.type(name="AuthPayload")
class AuthPayload:
    """A signed-in session: what `register`, `tokenAuth`, `refreshToken` and `changePassword` return."""

    token: str = strawberry.field(
        description="The access token (a JWT, short-lived). Send it as `Authorization: JWT <token>` "
        "(or `Bearer <token>`), or as `authToken` in the WebSocket `connection_init` payload."
    )
    refresh_token: str = strawberry.field(
        description="The refresh token (opaque, long-lived, single use): exchange it with `refreshToken` "
        "for a new pair before `token` expires. Never send it as an access token."
    )
    payload: JSON = strawberry.field(description="The access token's claims (`sub`, `username`, `exp`, ...).")
    refresh_expires_in: int = strawberry.field(
        description="When the refresh token expires, as a Unix timestamp (the name is django-graphql-jwt's)."
    )
    user: UserType = strawberry.field(description="The signed-in user.")

    @classmethod
    def from_issued(cls, issued: tokens.IssuedTokens) -> AuthPayload:
        return cls(
            token=issued.token,
            refresh_token=issued.refresh_token,
            payload=issued.payload,
            refresh_expires_in=issued.refresh_expires_in,
            user=issued.user,
        )


@strawberry.type
class VerifyTokenPayload:
    payload: JSON = strawberry.field(description="The claims of the valid access token.")
    user: UserType = strawberry.field(description="The user the token belongs to.")


@strawberry.type
class RevokeTokenPayload:
    revoked: int = strawberry.field(description="When the token(s) were revoked, as a Unix timestamp.")


@strawberry.type
class DeleteAccountPayload:
    deleted_id: strawberry.ID = strawberry.field(description="The global ID the deleted user had.")
