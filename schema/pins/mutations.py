from __future__ import annotations

import strawberry
import strawberry_django
from strawberry.types import Info

from chat.services import pins
from schema.context import signed_in_user
from schema.global_ids import decode_id
from schema.messages.mutations import refetch_message
from schema.messages.types import MessageType


@strawberry.type
class PinMutations:
    @strawberry_django.mutation(
        description=(
            "Pin a message to its room's `pinnedMessages`: the room's owner and admins may, and either member of "
            "a direct chat. Pinning a pinned message changes nothing; otherwise the room gets a `MessagePinned`. "
            "Errors: NOT_FOUND (a message you cannot see), FORBIDDEN (a member of a group room), BAD_USER_INPUT "
            "(a deleted message, or the room already has 50 pins), RATE_LIMITED."
        )
    )
    def pin_message(self, info: Info, id: strawberry.ID) -> MessageType:
        message = pins.pin_message(signed_in_user(info), decode_id(id, "Message"))
        return refetch_message(info, message.pk)

    @strawberry_django.mutation(
        description=(
            "Unpin a message (same rights as `pinMessage`). Unpinning a message that is not pinned changes "
            "nothing; otherwise the room gets a `MessageUnpinned`."
        )
    )
    def unpin_message(self, info: Info, id: strawberry.ID) -> MessageType:
        message = pins.unpin_message(signed_in_user(info), decode_id(id, "Message"))
        return refetch_message(info, message.pk)
