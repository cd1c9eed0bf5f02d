from __future__ import annotations

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry.types import Info

from chat import access
from chat import search as message_search
from chat.models import Message
from chat.search_terms import clean_search_term
from schema.connections import PageConnection
from schema.context import signed_in_user
from schema.global_ids import decode_id
from schema.messages.types import MessageType


@strawberry.type
class MessageQueries:
    @strawberry_django.connection(
        PageConnection[MessageType],
        description=(
            "A room's messages, newest first (`first`/`after` go back in time, `last`/`before` forward). "
            "Members only: NOT_FOUND for a room you cannot see, FORBIDDEN for a public room you have not joined. "
            "`search` keeps the messages containing all its words (full-text search; see `searchMessages`)."
        ),
    )
    def messages(self, info: Info, room_id: strawberry.ID, search: str | None = None) -> QuerySet[Message]:
        user = signed_in_user(info)
        room, _ = access.access_room_as_member(user, decode_id(room_id, "Room", "roomId"))
        qs = Message.objects.filter(room=room)
        term = clean_search_term(search)
        if term is not None:
            qs = message_search.matching(qs, message_search.clean_query(term))
        return qs.order_by("-created_at", "-pk")
