from __future__ import annotations

import strawberry
import strawberry_django
from django.db.models import Q, QuerySet
from strawberry.types import Info
from strawberry_django.optimizer import optimize

from chat import access
from chat.errors import NotFound
from chat.models import User
from chat.search_terms import clean_search_term
from schema.accounts.types import UserType
from schema.connections import PageConnection
from schema.context import signed_in_user, viewer
from schema.global_ids import decode_id


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The signed-in user, or null for an anonymous caller.")
    def me(self, info: Info) -> UserType | None:
        user = viewer(info)
        return user if user.is_authenticated else None

    @strawberry_django.connection(
        PageConnection[UserType],
        description=(
            "Other users, by username. `search` matches the username or display name (case-insensitive). "
            "Signed-in users only."
        ),
    )
    def users(self, info: Info, search: str | None = None) -> QuerySet[User]:
        user = signed_in_user(info)
        qs = access.users_visible_to(user).exclude(pk=user.pk)
        term = clean_search_term(search)
        if term is not None:
            qs = qs.filter(Q(username__icontains=term) | Q(display_name__icontains=term))
        return qs.order_by("username", "pk")

    @strawberry_django.field(description="A user by ID; NOT_FOUND if there is no such (active) user.")
    def user(self, info: Info, id: strawberry.ID) -> UserType:
        me = signed_in_user(info)
        found = optimize(access.users_visible_to(me).filter(pk=decode_id(id, "User")), info).first()
        if found is None:
            raise NotFound("User not found.")
        return found
