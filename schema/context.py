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
    http_stream: Any = None  # a subscription streamed over HTTP (schema/live/http_stream.py)
    user: Any = field(default_factory=AnonymousUser)
    # A bad or expired token: raised when a resolver asks for the user, so that
    # `me` with an expired token tells the client to refresh instead of "null".
    auth_error: ChatError | None = None
    connection_params: dict | None = None
    extra: dict = field(default_factory=dict)

    # Over a WebSocket one context serves every operation of the connection, so its
    # user is the socket's identity: fixed once, by connection_init (or the
    # handshake), through ``fix_socket_identity``. An operation that tried to change
    # it (a log-in over the socket) would make the whole socket act as someone
    # else, outside that user's revocation: assigning ``user`` then raises.
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "user" and self.__dict__.get("_identity_fixed"):
            raise AttributeError("A WebSocket's identity is fixed by its connection_init.")
        super().__setattr__(name, value)

    def fix_socket_identity(self, user) -> None:
        """Set the user of a WebSocket's context, once for the connection's life."""
        self.user = user
        self.__dict__["_identity_fixed"] = True

    def sign_in(self, user) -> None:
        """Let the rest of this operation act as ``user`` (a log-in answering the new
        user's own fields, as django-graphql-jwt does). Over HTTP a context serves
        one request; over a WebSocket the identity is the socket's and stays."""
        if self.ws is None:
            self.user = user

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
