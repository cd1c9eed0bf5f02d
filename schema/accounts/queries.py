from __future__ import annotations

import strawberry
from strawberry.types import Info

from schema.accounts.types import UserType
from schema.context import viewer


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The signed-in user, or null for an anonymous caller.")
    def me(self, info: Info) -> UserType | None:
        user = viewer(info)
        return user if user.is_authenticated else None
