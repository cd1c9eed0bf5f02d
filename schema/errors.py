"""Turns exceptions into typed GraphQL errors (``extensions.code``).

Domain errors keep their message and code; Django's validation, permission and
lookup errors map to ``BAD_USER_INPUT``, ``FORBIDDEN`` and ``NOT_FOUND``; a
database that is down becomes ``SERVICE_UNAVAILABLE``. Anything else is logged
with its traceback and answered as an opaque ``INTERNAL_SERVER_ERROR``: a
client never sees a stack trace or an internal message. Every error carries the
id of the request (or WebSocket connection) in ``extensions.requestId``, the
id its log lines carry.
"""

from __future__ import annotations

import logging
import re

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from graphql.error import GraphQLError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from strawberry.extensions import MaskErrors
from strawberry.relay.types import GlobalIDValueError

from chat import request_id
from chat.errors import (
    NUL_CHARACTER_MESSAGE,
    BadUserInput,
    ChatError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    is_nul_character_error,
)
from schema.limits import reworded, with_code

logger = logging.getLogger("chat.graphql")

# The message of Django's IntegerField.get_prep_value for a value that is not a number.
_FIELD_EXPECTED_NUMBER = re.compile(r"^Field '[^']+' expected a number but got ")


def as_chat_error(exc: BaseException) -> ChatError | None:
    """The domain error an exception stands for, or ``None`` if it is a bug."""
    if isinstance(exc, ChatError):
        return exc
    if isinstance(exc, ValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else None
        return BadUserInput("; ".join(exc.messages), fields=fields)
    if isinstance(exc, GlobalIDValueError):
        return BadUserInput("Malformed ID.")
    if is_nul_character_error(exc):
        return BadUserInput(NUL_CHARACTER_MESSAGE)
    if isinstance(exc, (ValueError, TypeError)) and _FIELD_EXPECTED_NUMBER.match(str(exc)):
        # Django refusing a lookup value, e.g. node(id:) with a global ID "Room:x"
        # (found by tests/test_fuzz.py): the ID was malformed, not the server.
        return BadUserInput("Malformed ID.")
    if isinstance(exc, PermissionDenied):
        return Forbidden()
    if isinstance(exc, ObjectDoesNotExist):
        return NotFound()
    if isinstance(exc, (OperationalError, InterfaceError)):
        return ServiceUnavailable()
    if isinstance(exc, DatabaseError):
        return ServiceUnavailable()
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)):
        return ServiceUnavailable()  # the channel layer (Redis) or another backing service
    return None


class TypedErrors(MaskErrors):
    """Mask unexpected errors; give every expected one its ``extensions.code``."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: True)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        typed = self._typed(error)
        current = request_id.current()
        if current is None:
            return typed
        return reworded(typed, typed.message, {**(typed.extensions or {}), "requestId": current})

    def _typed(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is None:  # syntax, validation, limits, variables: safe, given a code (schema/limits.py)
            pre_execution = any(error is e for e in self.execution_context.pre_execution_errors or ())
            return with_code(error, pre_execution)
        if isinstance(original, GraphQLError):  # e.g. a malformed global ID
            return with_code(original, False) if original.original_error is None else self._typed(original)
        chat_error = as_chat_error(original)
        if chat_error is None and not error.path:
            # No path: raised while coercing the variables (a scalar's parse_value), before
            # execution: the value the client sent is wrong (found by tests/test_fuzz.py).
            return with_code(error, False)
        if chat_error is None:
            logger.error("unexpected error in %s", error.path, exc_info=original)
            message, extensions = "Unexpected error.", {"code": "INTERNAL_SERVER_ERROR"}
        else:
            message, extensions = chat_error.message, chat_error.as_extensions()
        return reworded(error, message, extensions)
