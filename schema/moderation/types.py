"""GraphQL types of moderation: bans, reports and invite links."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry_django
from django.conf import settings
from django.db.models import QuerySet
from strawberry import relay
from strawberry.types import Info

from chat import access
from chat.models import Ban, Invite, Report
from chat.services import moderation
from schema.accounts.types import UserType
from schema.context import viewer

if TYPE_CHECKING:
    from schema.messages.types import MessageType


@strawberry.enum(name="ReportReason", description="Why a message is reported.")
class ReportReason(Enum):
    SPAM = "SPAM"
    ABUSE = "ABUSE"
    HARASSMENT = "HARASSMENT"
    OTHER = "OTHER"


@strawberry_django.type(Ban, name="RoomBan")
class RoomBanType(relay.Node):
    """A user banned from a room (seen by the room's owner and admins, and staff)."""

    user: UserType = strawberry_django.field(description="The banned user.")
    by: UserType | None = strawberry_django.field(
        field_name="banned_by", description="Who banned them; null if that account is gone."
    )
    reason: str = strawberry_django.field(description="Why, as the moderator wrote it; may be empty.")
    created_at: datetime = strawberry_django.field(description="When the ban started.")

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Ban], info: Info, **kwargs) -> QuerySet[Ban]:
        return queryset & access.bans_visible_to(viewer(info))


@strawberry_django.type(Report, name="Report")
class ReportType(relay.Node):
    """A member's report of a message (seen by the room's owner and admins, and staff)."""

    reporter: UserType | None = strawberry_django.field(description="Who reported it; null if that account is gone.")
    comment: str = strawberry_django.field(description="The reporter's words; may be empty.")
    text: str = strawberry_django.field(
        field_name="text_snapshot",
        description="The message text when it was reported; empty once the message is deleted.",
    )
    created_at: datetime = strawberry_django.field(description="When it was reported.")
    resolved_at: datetime | None = strawberry_django.field(description="When a moderator resolved it; null if open.")
    resolved_by: UserType | None = strawberry_django.field(description="Who resolved it.")
    message: Annotated[MessageType, strawberry.lazy("schema.messages.types")] = strawberry_django.field(
        description="The reported message (a tombstone if it was deleted)."
    )

    @strawberry_django.field(only=["reason"], description="Why it was reported.")
    def reason(self, root: Report) -> ReportReason:
        return ReportReason(root.reason)

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Report], info: Info, **kwargs) -> QuerySet[Report]:
        return queryset & access.reports_visible_to(viewer(info))


def base_url(info: Info) -> str:
    """Where the web chat is served: ``PUBLIC_BASE_URL`` if set, else the host of the request."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL
    request = info.context.request
    build = getattr(request, "build_absolute_uri", None)
    if build is not None:
        return build("/")
    scope = getattr(request, "scope", None) or {}
    host = dict(scope.get("headers") or []).get(b"host", b"localhost").decode("latin-1")
    return f"{'https' if scope.get('scheme') in ('https', 'wss') else 'http'}://{host}/"


@strawberry.type(name="Invite", description="An invite link to a room.")
class InviteType:
    code: str = strawberry.field(description="The secret code (192 random bits); pass it to `joinByInvite`.")
    expires_at: datetime | None = strawberry.field(description="When it stops working; null: never.")
    uses: int = strawberry.field(description="How many users joined with it.")
    max_uses: int | None = strawberry.field(description="How many may join with it; null: no limit.")
    revoked: bool = strawberry.field(description="Whether a moderator revoked it.")
    created_at: datetime = strawberry.field(description="When it was made.")
    invite: strawberry.Private[Invite]

    @strawberry.field(description="The link to share: the web chat opens it and joins the room once signed in.")
    def url(self, info: Info) -> str:
        return moderation.invite_url(self.invite, base_url(info))

    @classmethod
    def from_model(cls, invite: Invite) -> InviteType:
        return cls(
            code=invite.code,
            expires_at=invite.expires_at,
            uses=invite.uses,
            max_uses=invite.max_uses,
            revoked=invite.revoked,
            created_at=invite.created_at,
            invite=invite,
        )
