from __future__ import annotations

import strawberry
import strawberry_django
from django.db.models import Q, QuerySet
from strawberry.types import Info
from strawberry_django.optimizer import optimize

from chat import access
from chat.errors import NotFound
from chat.models import Room
from chat.search_terms import clean_search_term
from schema.connections import PageConnection
from schema.context import signed_in_user
from schema.global_ids import decode_id
from schema.rooms.types import RoomType


def refetch_room(info: Info, pk: int) -> Room:
    """The room ``pk`` loaded for ``info``'s selection (annotations such as `unreadCount` included)."""
    room = optimize(Room.objects.filter(pk=pk), info).first()
    if room is None:
        raise NotFound("Room not found.")
    return room


@strawberry.type
class RoomQueries:
    @strawberry_django.connection(
        PageConnection[RoomType],
        description=(
            "Rooms you can see, newest first: public group rooms and the rooms you are a member of "
            "(direct chats included). `joined: true` lists only yours; `search` matches name or topic."
        ),
    )
    def rooms(self, info: Info, search: str | None = None, joined: bool | None = None) -> QuerySet[Room]:
        user = signed_in_user(info)
        qs = access.rooms_joined_by(user) if joined else access.rooms_visible_to(user)
        if joined is False:
            qs = qs.exclude(memberships__user=user)
        term = clean_search_term(search)
        if term is not None:
            qs = qs.filter(Q(name__icontains=term) | Q(topic__icontains=term))
        return qs.order_by("-created_at", "-pk")

    @strawberry_django.field(
        description="A room by its ID. A private room you are not in answers NOT_FOUND, like a missing one."
    )
    def room(self, info: Info, id: strawberry.ID) -> RoomType:
        user = signed_in_user(info)
        room = access.access_room(user, decode_id(id, "Room"))
        return refetch_room(info, room.pk)
