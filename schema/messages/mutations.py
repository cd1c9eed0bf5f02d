from __future__ import annotations

import strawberry
import strawberry_django
from strawberry.file_uploads import Upload
from strawberry.types import Info
from strawberry_django.optimizer import optimize

from chat.models import Message
from chat.services import attachments, messages
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
    thread_id: strawberry.ID | None = strawberry.field(
        default=None,
        description=(
            "Reply in the thread of this message (of the same room): the reply's `replyTo` is the thread's root, "
            "also when `threadId` names a reply (a reply to a reply joins the root's thread)."
        ),
    )
    reply_to_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The older name of `threadId` (same meaning); if both are given they must name the same thread.",
    )
    attachment_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="Your own uploads (`uploadAttachment`) not yet attached to a message; at most 10 by default.",
    )
    files: list[Upload] | None = strawberry.field(
        default=None,
        description=(
            "Files to upload and attach in the same request (GraphQL multipart request spec), checked like "
            "`uploadAttachment`; together with `attachmentIds` at most 10 by default. If one is refused, "
            "nothing is stored and no message is sent."
        ),
    )


def refetch_message(info: Info, pk: int) -> Message:
    return optimize(Message.objects.filter(pk=pk), info).get()


@strawberry.type
class MessageMutations:
    @strawberry_django.mutation(
        description=(
            "Send a message to a room you are a member of. Errors: NOT_FOUND (room), BAD_USER_INPUT (text, "
            "threadId, replyToId, attachmentIds, clientId reused in another room, a corrupt image in `files`), "
            "RATE_LIMITED; "
            "for `files` also PAYLOAD_TOO_LARGE and UNSUPPORTED_MEDIA_TYPE."
        )
    )
    def send_message(self, info: Info, input: SendMessageInput) -> MessageType:
        actor, room_id = signed_in_user(info), decode_id(input.room_id, "Room", "roomId")
        arguments = {
            "client_id": input.client_id,
            "reply_to_id": decode_id(input.reply_to_id, "Message", "replyToId") if input.reply_to_id else None,
            "thread_id": decode_id(input.thread_id, "Message", "threadId") if input.thread_id else None,
            "attachment_ids": [decode_id(a, "Attachment", "attachmentIds") for a in input.attachment_ids],
        }
        if input.files:
            message = attachments.send_message_with_files(actor, room_id, input.text, input.files, **arguments)
        else:
            message = messages.send_message(actor, room_id, input.text, **arguments)
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
