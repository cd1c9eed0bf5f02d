from __future__ import annotations

from datetime import datetime

import strawberry_django
from django.db.models import QuerySet
from strawberry import relay
from strawberry.types import Info

from chat import access
from chat.models import User
from schema.context import viewer


@strawberry_django.type(User, name="User")
class UserType(relay.Node):
    """A person on this chat server."""

    username: str = strawberry_django.field(description="Unique, case-insensitive login name.")
    display_name: str = strawberry_django.field(description="Name to show; may be empty (then show `username`).")
    bio: str = strawberry_django.field(description="A short text about the user.")
    last_seen_at: datetime | None = strawberry_django.field(description="When the user was last connected.")
    date_joined: datetime = strawberry_django.field(description="When the account was created.")

    @strawberry_django.field(
        only=["email"], description="Email address: visible to the user themself and to staff only."
    )
    def email(self, root: User, info: Info) -> str | None:
        user = info.context.user
        if user.is_authenticated and (user.pk == root.pk or user.is_staff):
            return root.email
        return None

    @strawberry_django.field(only=["is_staff"], description="Whether the user is a staff member of this server.")
    def is_staff(self, root: User) -> bool:
        return root.is_staff

    @classmethod
    def get_queryset(cls, queryset: QuerySet[User], info: Info, **kwargs) -> QuerySet[User]:
        return queryset & access.users_visible_to(viewer(info))
