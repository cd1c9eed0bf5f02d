from __future__ import annotations

from enum import Enum

import strawberry
import strawberry_django
from django.conf import settings
from strawberry import relay
from strawberry.types import Info
from strawberry_django.optimizer import optimize

from chat import search
from chat.errors import BadUserInput
from chat.models import Message
from schema.context import signed_in_user
from schema.global_ids import decode_id
from schema.messages.types import MessageType


@strawberry.enum(name="MessageSearchOrder", description="How `searchMessages` orders its results.")
class MessageSearchOrder(Enum):
    RELEVANCE = strawberry.enum_value(search.RELEVANCE, description="Best matches first (then newest).")
    NEWEST = strawberry.enum_value(search.NEWEST, description="Newest first (the default).")


@strawberry.type(name="MessageSearchEdge", description="A message that matched, with the matching text.")
class MessageSearchEdge(relay.Edge[MessageType]):
    snippet: str = strawberry.field(
        description=(
            "The part of the text that matched, HTML-escaped, with each hit in `<mark>...</mark>` "
            "(safe to insert as HTML)."
        )
    )


@strawberry.type(name="MessageSearchConnection", description="A page of search results.")
class MessageSearchConnection(relay.Connection[MessageType]):
    edges: list[MessageSearchEdge] = strawberry.field(description="The matches of this page, in order.")
    total_count: int = strawberry.field(description="How many messages match in all.")


@strawberry.type
class SearchQueries:
    @strawberry_django.field(
        description=(
            "Messages containing every word of `query` (full-text: whole words, case-insensitive), in every room "
            "you are a member of or in `roomId` only; deleted messages never match. Newest first, or "
            "`orderBy: RELEVANCE`. `first` (default 20, at most 100) and `after` (an `endCursor`) page through. "
            "BAD_USER_INPUT for a query over 200 characters or without a word; NOT_FOUND or FORBIDDEN for a room "
            "you cannot search."
        )
    )
    def search_messages(
        self,
        info: Info,
        query: str,
        room_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
        order_by: MessageSearchOrder = MessageSearchOrder.NEWEST,
    ) -> MessageSearchConnection:
        actor = signed_in_user(info)
        limit = settings.PAGE_SIZE_DEFAULT if first is None else first
        if not 0 <= limit <= settings.PAGE_SIZE_MAX:
            raise BadUserInput(
                f"`first` must be between 0 and {settings.PAGE_SIZE_MAX}.", fields={"first": ["Out of range."]}
            )
        room_pk = decode_id(room_id, "Room", "roomId") if room_id is not None else None
        offset = search.decode_cursor(after)
        page = search.search_messages(actor, query, room_pk, order=order_by.value, offset=offset, limit=limit)
        ids = [hit.message_id for hit in page.hits]
        messages = {m.pk: m for m in optimize(Message.objects.filter(pk__in=ids), info)}
        edges = [
            MessageSearchEdge(
                cursor=search.encode_cursor(offset + n + 1), node=messages[hit.message_id], snippet=hit.snippet
            )
            for n, hit in enumerate(page.hits)
            if hit.message_id in messages
        ]
        return MessageSearchConnection(
            edges=edges,
            total_count=page.total,
            page_info=relay.PageInfo(
                has_next_page=offset + len(page.hits) < page.total,
                has_previous_page=offset > 0,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )
