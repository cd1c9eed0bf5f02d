from __future__ import annotations

import strawberry
import strawberry_django
from strawberry.types import Info

from chat.services import notifications
from schema.context import signed_in_user
from schema.global_ids import decode_id
from schema.notifications.types import NotificationLevelEnum
from schema.rooms.queries import refetch_room
from schema.rooms.types import RoomType


@strawberry.type
class NotificationMutations:
    @strawberry_django.mutation(
        description=(
            "Mark notifications read: those in `ids` (at most 100), or all your unread ones with `all: true`. "
            "Returns how many changed (already read ones do not count). NOT_FOUND if an id is not one of yours "
            "(then nothing changes); BAD_USER_INPUT without `ids` or `all`."
        )
    )
    def mark_notifications_read(
        self, info: Info, ids: list[strawberry.ID] | None = None, all: bool | None = None
    ) -> int:
        actor = signed_in_user(info)
        pks = [decode_id(value, "Notification", "ids") for value in ids or ()]
        return notifications.mark_notifications_read(actor, pks, all_unread=bool(all))

    @strawberry_django.mutation(
        description=(
            "Choose what you are notified of in a room you belong to: ALL messages, MENTIONS (the default) "
            "or NONE (no notification is stored for that room). NOT_FOUND for a room you cannot see, "
            "FORBIDDEN for a public room you have not joined."
        )
    )
    def set_room_notification_level(self, info: Info, room_id: strawberry.ID, level: NotificationLevelEnum) -> RoomType:
        room = notifications.set_room_notification_level(
            signed_in_user(info), decode_id(room_id, "Room", "roomId"), level.value
        )
        return refetch_room(info, room.pk)
