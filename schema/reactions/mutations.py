from __future__ import annotations

import strawberry
import strawberry_django
from strawberry.types import Info

from chat.services import reactions
from schema.context import signed_in_user
from schema.global_ids import decode_id
from schema.messages.mutations import refetch_message
from schema.messages.types import MessageType

ERRORS = (
    "Errors: NOT_FOUND (a message you cannot see: members only), BAD_USER_INPUT (not exactly one Unicode emoji, "
    "a deleted message), RATE_LIMITED."
)


@strawberry.type
class ReactionMutations:
    @strawberry_django.mutation(
        description=(
            "React to a message with one Unicode emoji (e.g. `👍`, `👍🏽`). Adding a reaction you already made "
            "changes nothing and sends no event; otherwise the room gets a `ReactionAdded`. A message has at "
            f"most 20 different emoji: a 21st is BAD_USER_INPUT. {ERRORS}"
        )
    )
    def add_reaction(self, info: Info, message_id: strawberry.ID, emoji: str) -> MessageType:
        message = reactions.add_reaction(signed_in_user(info), decode_id(message_id, "Message", "messageId"), emoji)
        return refetch_message(info, message.pk)

    @strawberry_django.mutation(
        description=(
            "Take back your reaction. Removing one you did not make changes nothing and sends no event; "
            f"otherwise the room gets a `ReactionRemoved`. {ERRORS}"
        )
    )
    def remove_reaction(self, info: Info, message_id: strawberry.ID, emoji: str) -> MessageType:
        message = reactions.remove_reaction(signed_in_user(info), decode_id(message_id, "Message", "messageId"), emoji)
        return refetch_message(info, message.pk)
