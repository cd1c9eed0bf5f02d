"""The id of the request (or WebSocket connection) being served, for logs and errors.

A context variable, so that async code, the tasks it starts and the worker
threads of ``sync_to_async`` (which copy the context) all see the id of the
request they work for. A client or proxy may send its own id (``X-Request-ID``):
it is kept when it is short and plain, else a new one is made.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

MAX_LENGTH = 128
_SANE = re.compile(rf"[A-Za-z0-9._:/+=@-]{{1,{MAX_LENGTH}}}")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current() -> str | None:
    return _current.get()


def new() -> str:
    return uuid.uuid4().hex


def accept(incoming: str | None) -> str:
    """``incoming`` if it is a sane id (bounded length, plain characters), else a new id."""
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return new()


def bind(value: str) -> Token:
    return _current.set(value)


def unbind(token: Token) -> None:
    _current.reset(token)
