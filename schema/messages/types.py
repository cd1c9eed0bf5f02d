from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry_django
from django.conf import settings
from django.db.models import BooleanField, Exists, OuterRef, Prefetch, QuerySet, Value
from strawberry import relay
from strawberry.types import Info

from chat import access
from chat.errors import BadUserInput
from chat.models import Block, Message, MessageEdit, Reaction, User
from schema.accounts.types import UserType
from schema.attachments.types import AttachmentType
from schema.connections import PageConnection
from schema.context import viewer

if TYPE_CHECKING:
    from schema.rooms.types import RoomType

REACTION_USERS_DEFAULT = 10


@strawberry.type(name="ReactionGroup", description="Everyone who reacted to a message with one emoji.")
class ReactionGroup:
    emoji: str = strawberry.field(description="The emoji (one Unicode emoji, fully qualified).")
    count: int = strawberry.field(description="How many people reacted with it.")
    reacted_by_me: bool = strawberry.field(description="Whether you are one of them.")
    all_users: strawberry.Private[list[User]]

    @strawberry.field(
        description=f"The first `first` of them (default {REACTION_USERS_DEFAULT}, at most 100), earliest first."
    )
    def users(self, first: int | None = REACTION_USERS_DEFAULT) -> list[UserType]:
        first = REACTION_USERS_DEFAULT if first is None else first
        if not 0 <= first <= settings.PAGE_SIZE_MAX:
            raise BadUserInput(
                f"`first` must be between 0 and {settings.PAGE_SIZE_MAX}.", fields={"first": ["Out of range."]}
            )
        return self.all_users[:first]


def reactions_queryset() -> QuerySet[Reaction]:
    return Reaction.objects.filter(user__is_active=True).select_related("user").order_by("created_at", "pk")


def reaction_groups(rows, viewer_id: int | None) -> list[ReactionGroup]:
    """One group per emoji, in the order each emoji was first used."""
    groups: dict[str, ReactionGroup] = {}
    for row in rows:
        group = groups.get(row.emoji)
        if group is None:
            group = groups[row.emoji] = ReactionGroup(emoji=row.emoji, count=0, reacted_by_me=False, all_users=[])
        group.count += 1
        group.reacted_by_me = group.reacted_by_me or row.user_id == viewer_id
        group.all_users.append(row.user)
    return list(groups.values())


@strawberry_django.type(MessageEdit, name="MessageEdit")
class MessageEditType:
    """A text the message had until an edit replaced it."""

    text: str = strawberry_django.field(description="The text before the edit.")
    edited_at: datetime = strawberry_django.field(description="When the edit replaced it.")


def _sender_blocked_expression(info: Info):
    user = viewer(info)
    if not user.is_authenticated:
        return Value(False, output_field=BooleanField())
    return Exists(Block.objects.filter(blocker_id=user.pk, blocked_id=OuterRef("sender_id")))


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
        description=(
            "The root of the thread this message replies in (a tombstone if that was deleted); null if it is "
            "not a reply. Threads are flat: a reply to a reply points at the root."
        )
    )
    attachments: list[AttachmentType] = strawberry_django.field(
        description="Files attached to the message (at most `MAX_FILES_PER_MESSAGE`); empty once deleted."
    )
    reply_count: int = strawberry_django.field(
        description="How many replies the thread started by this message has (deleted replies do not count)."
    )
    last_reply_at: datetime | None = strawberry_django.field(
        description="When the latest reply of this message's thread was sent; null if none."
    )
    pinned_at: datetime | None = strawberry_django.field(
        description="When the message was pinned (`pinMessage`); null if it is not pinned."
    )
    pinned_by: UserType | None = strawberry_django.field(description="Who pinned it; null if it is not pinned.")
    edits: list[MessageEditType] = strawberry_django.field(
        description=(
            "Earlier versions of the text, oldest first: each is the text an edit replaced, with the time of "
            "that edit (the current text is `text`). Empty if never edited; removed when the message is deleted."
        )
    )

    @strawberry_django.field(only=["deleted_at"], description="Whether the message was deleted.")
    def is_deleted(self, root: Message) -> bool:
        return root.deleted_at is not None

    @strawberry_django.field(
        prefetch_related=[lambda info: Prefetch("reactions", queryset=reactions_queryset(), to_attr="reaction_rows")],
        description=(
            "Reactions grouped by emoji, in the order each emoji was first used (at most 20 emoji per message; "
            "none on deleted messages). Add yours with `addReaction`."
        ),
    )
    def reactions(self, root: Message, info: Info) -> list[ReactionGroup]:
        rows = getattr(root, "reaction_rows", None)
        if rows is None:
            rows = reactions_queryset().filter(message_id=root.pk)
        user = info.context.user
        return reaction_groups(rows, user.pk if user.is_authenticated else None)

    @strawberry_django.connection(
        PageConnection[Annotated["MessageType", strawberry.lazy("schema.messages.types")]],
        description=(
            "The replies of the thread this message starts, oldest first (`first`/`after` go forward in time, "
            "`last`/`before` back). Reply with `sendMessage(input: {threadId})`."
        ),
    )
    def replies(self, root: Message, info: Info) -> QuerySet[Message]:
        return access.messages_visible_to(viewer(info)).filter(reply_to_id=root.pk).order_by("created_at", "pk")

    @strawberry_django.field(
        annotate={"sender_blocked_by_viewer": lambda info: _sender_blocked_expression(info)},
        only=["sender_id"],
        description=(
            "Whether you have blocked the sender (`blockUser`): clients may hide or collapse the message. "
            "Depends on who asks."
        ),
    )
    def sender_blocked(self, root: Message, info: Info) -> bool:
        if hasattr(root, "sender_blocked_by_viewer"):
            return root.sender_blocked_by_viewer
        user = viewer(info)
        return bool(user.is_authenticated and root.sender_id and access.has_blocked(user.pk, root.sender_id))

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Message], info: Info, **kwargs) -> QuerySet[Message]:
        return queryset & access.messages_visible_to(viewer(info))
