from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import relay
from strawberry.types import Info

from chat import access
from chat.models import Notification, NotificationLevel
from schema.accounts.types import UserType
from schema.context import viewer

if TYPE_CHECKING:
    from schema.messages.types import MessageType
    from schema.rooms.types import RoomType


@strawberry.enum(name="NotificationKind", description="What a notification is about.")
class NotificationKind(Enum):
    MENTIONED = strawberry.enum_value(
        "MENTIONED", description="Someone wrote your @username, or @room or @here, in a message."
    )
    NEW_MESSAGE = strawberry.enum_value(
        "NEW_MESSAGE", description="A message in a room whose notification level you set to ALL."
    )
    ADDED_TO_ROOM = strawberry.enum_value("ADDED_TO_ROOM", description="Someone added you to a room.")
    DIRECT_CHAT_STARTED = strawberry.enum_value("DIRECT_CHAT_STARTED", description="Someone started a direct chat.")


@strawberry.enum(name="NotificationLevel", description="What you are notified of in a room.")
class NotificationLevelEnum(Enum):
    ALL = strawberry.enum_value(NotificationLevel.ALL.value, description="Every message, and mentions.")
    MENTIONS = strawberry.enum_value(
        NotificationLevel.MENTIONS.value, description="Mentions of you, @room and @here only (the default)."
    )
    NONE = strawberry.enum_value(NotificationLevel.NONE.value, description="Nothing: no notification is stored.")


@strawberry_django.type(
    Notification,
    name="Notification",
    description=(
        "Something that concerns you: stored in your inbox until you mark it read (`markNotificationsRead`, "
        "or `markRead` past its message) and sent live on the `notifications` subscription. "
        "Deleting a message deletes its notifications."
    ),
)
class NotificationType(relay.Node):
    created_at: datetime = strawberry_django.field(description="When it happened.")
    read_at: datetime | None = strawberry_django.field(description="When you marked it read; null while unread.")
    by: UserType | None = strawberry_django.field(description="Who caused it; null if that account is gone.")
    room: Annotated[RoomType, strawberry.lazy("schema.rooms.types")] = strawberry_django.field(
        description="The room it is about."
    )
    message: Annotated[MessageType, strawberry.lazy("schema.messages.types")] | None = strawberry_django.field(
        description="The message, for MENTIONED and NEW_MESSAGE; null otherwise."
    )

    @strawberry_django.field(only=["kind"], description="What it is about.")
    def kind(self, root: Notification) -> NotificationKind:
        return NotificationKind(root.kind)

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Notification], info: Info, **kwargs) -> QuerySet[Notification]:
        return queryset & access.notifications_visible_to(viewer(info))
