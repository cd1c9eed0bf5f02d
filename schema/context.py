"""The per-request GraphQL context, the same shape over HTTP and WebSocket."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AnonymousUser
from strawberry.types import Info

from chat.access import require_user
from chat.errors import ChatError


@dataclass
class ChatContext:
    request: Any
    response: Any = None
    ws: Any = None  # the WebSocket consumer, for subscriptions
    user: Any = field(default_factory=AnonymousUser)
    # A bad or expired token: raised when a resolver asks for the user, so that
    # `me` with an expired token tells the client to refresh instead of "null".
    auth_error: ChatError | None = None
    connection_params: dict | None = None
    extra: dict = field(default_factory=dict)

    # strawberry and strawberry-django read some context keys dict-style.
    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


def viewer(info: Info):
    """The caller: a ``User``, or ``AnonymousUser``. Raises if the token was bad."""
    context: ChatContext = info.context
    if context.auth_error is not None:
        raise context.auth_error
    return context.user


def signed_in_user(info: Info):
    """The caller, or ``UNAUTHENTICATED``."""
    return require_user(viewer(info))
