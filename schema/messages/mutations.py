from __future__ import annotations

import strawberry
import strawberry_django
from strawberry.types import Info
from strawberry_django.optimizer import optimize

from chat.models import Message
from chat.services import messages
from schema.context import signed_in_user
from schema.global_ids import decode_id
from schema.messages.types import MessageType
from schema.rooms.queries import refetch_room
from schema.rooms.types import RoomType


@strawberry.input(description="A message to send.")
class SendMessageInput:
    room_id: strawberry.ID = strawberry.field(description="A room you are a member of.")
    text: str = strawberry.field(
        default="", description="1 to 4000 characters after trimming; may be empty when attachments are given."
    )
    client_id: str | None = strawberry.field(
        default=None,
        description=(
            "Your idempotency key (at most 64 characters): sending again with the same key returns the first "
            "message instead of storing a second one. Use a fresh UUID per message and reuse it on retries."
        ),
    )
    reply_to_id: strawberry.ID | None = strawberry.field(
        default=None, description="A message of the same room this one replies to."
    )
    attachment_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="Your own uploads (`uploadAttachment`) not yet attached to a message; at most 10 by default.",
    )


def refetch_message(info: Info, pk: int) -> Message:
    return optimize(Message.objects.filter(pk=pk), info).get()


@strawberry.type
class MessageMutations:
    @strawberry_django.mutation(
        description=(
            "Send a message to a room you are a member of. Errors: NOT_FOUND (room), BAD_USER_INPUT (text, "
            "replyToId, attachmentIds, clientId reused in another room), RATE_LIMITED."
        )
    )
    def send_message(self, info: Info, input: SendMessageInput) -> MessageType:
        message = messages.send_message(
            signed_in_user(info),
            decode_id(input.room_id, "Room", "roomId"),
            input.text,
            client_id=input.client_id,
            reply_to_id=decode_id(input.reply_to_id, "Message", "replyToId") if input.reply_to_id else None,
            attachment_ids=[decode_id(a, "Attachment", "attachmentIds") for a in input.attachment_ids],
        )
        return refetch_message(info, message.pk)

    @strawberry_django.mutation(description="Change the text of your own message; sets `editedAt`.")
    def edit_message(self, info: Info, id: strawberry.ID, text: str) -> MessageType:
        message = messages.edit_message(signed_in_user(info), decode_id(id, "Message"), text)
        return refetch_message(info, message.pk)

    @strawberry_django.mutation(
        description=(
            "Delete a message: yours, or any in a room where you are owner or admin, or anywhere as staff. "
            "Its text and files go; a tombstone (`isDeleted: true`) stays in history. Returns the tombstone."
        )
    )
    def delete_message(self, info: Info, id: strawberry.ID) -> MessageType:
        message = messages.delete_message(signed_in_user(info), decode_id(id, "Message"))
        return refetch_message(info, message.pk)

    @strawberry_django.mutation(
        description=(
            "Mark a room read up to a message (your read position only moves forward); "
            "others see a read receipt. Returns the room with its new `unreadCount`."
        )
    )
    def mark_read(self, info: Info, room_id: strawberry.ID, message_id: strawberry.ID) -> RoomType:
        room = messages.mark_read(
            signed_in_user(info),
            decode_id(room_id, "Room", "roomId"),
            decode_id(message_id, "Message", "messageId"),
        )
        return refetch_room(info, room.pk)
