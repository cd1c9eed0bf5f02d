from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry import relay
from strawberry.types import Info

from chat import access
from chat.models import Message
from schema.accounts.types import UserType
from schema.attachments.types import AttachmentType
from schema.context import viewer

if TYPE_CHECKING:
    from schema.rooms.types import RoomType


@strawberry_django.type(Message, name="Message")
class MessageType(relay.Node):
    """A message in a room. A deleted message stays in history as a tombstone: empty text, no attachments,
    `isDeleted: true`."""

    text: str = strawberry_django.field(description="The message text (1 to 4000 characters; empty when deleted).")
    client_id: str | None = strawberry_django.field(
        description="The idempotency key the sender's client chose (`sendMessage(input: {clientId})`)."
    )
    created_at: datetime = strawberry_django.field(description="When the message was sent.")
    edited_at: datetime | None = strawberry_django.field(description="When the text was last edited; null if never.")
    deleted_at: datetime | None = strawberry_django.field(
        description="When the message was deleted; null if it was not."
    )
    sender: UserType | None = strawberry_django.field(description="Who sent it; null if that account was deleted.")
    room: Annotated[RoomType, strawberry.lazy("schema.rooms.types")] = strawberry_django.field(
        description="The room the message belongs to."
    )
    reply_to: MessageType | None = strawberry_django.field(
        description="The message this one replies to (a tombstone if that was deleted); null if none."
    )
    attachments: list[AttachmentType] = strawberry_django.field(
        description="Files attached to the message (at most `MAX_FILES_PER_MESSAGE`); empty once deleted."
    )

    @strawberry_django.field(only=["deleted_at"], description="Whether the message was deleted.")
    def is_deleted(self, root: Message) -> bool:
        return root.deleted_at is not None

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Message], info: Info, **kwargs) -> QuerySet[Message]:
        return queryset & access.messages_visible_to(viewer(info))
