from __future__ import annotations

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry.types import Info

from chat import access
from chat.models import Notification
from schema.connections import PageConnection
from schema.context import signed_in_user
from schema.notifications.types import NotificationType


@strawberry.type
class NotificationQueries:
    @strawberry_django.connection(
        PageConnection[NotificationType],
        description=(
            "Your notifications, newest first (mentions, messages of rooms set to ALL, rooms you were added to, "
            "direct chats started with you), of the rooms you belong to. `unreadOnly: true` lists the unread ones."
        ),
    )
    def notifications(self, info: Info, unread_only: bool | None = None) -> QuerySet[Notification]:
        qs = access.notifications_visible_to(signed_in_user(info))
        if unread_only:
            qs = qs.filter(read_at__isnull=True)
        return qs.order_by("-created_at", "-pk")
