"""Ephemeral real-time mutations: typing."""

from __future__ import annotations

import strawberry
from asgiref.sync import sync_to_async
from strawberry.types import Info

from chat.services import presence
from schema.context import signed_in_user
from schema.global_ids import decode_id


@strawberry.type
class EventMutations:
    @strawberry.mutation(
        description=(
            "Tell the room's other members that you started (`typing: true`) or stopped typing: they get "
            "`TypingChanged` on `roomEvents`. Members only; throttled per room (`RATE_LIMITED`). "
            "Send it again every few seconds while typing; clients should expire a typing indicator "
            "after about 10 seconds without news."
        )
    )
    async def set_typing(self, info: Info, room_id: strawberry.ID, typing: bool) -> bool:
        user = signed_in_user(info)
        room_pk = decode_id(room_id, "Room", "roomId")
        await sync_to_async(presence.set_typing)(user, room_pk, typing)
        return True
