"""Domain errors. Each carries the code clients see in ``extensions.code``.

The API layer (schema/, chat/views.py) turns them into GraphQL errors or JSON
error bodies; the domain never knows which transport it serves.
"""

from __future__ import annotations


class ChatError(Exception):
    code = "INTERNAL_SERVER_ERROR"
    http_status = 500
    default_message = "Unexpected error."

    def __init__(self, message: str | None = None, **extensions):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.extensions = extensions

    def as_extensions(self) -> dict:
        return {"code": self.code, **self.extensions}


class Unauthenticated(ChatError):
    code = "UNAUTHENTICATED"
    http_status = 401
    default_message = "Authentication required."


class Forbidden(ChatError):
    code = "FORBIDDEN"
    http_status = 403
    default_message = "You are not allowed to do this."


class NotFound(ChatError):
    code = "NOT_FOUND"
    http_status = 404
    default_message = "Not found."


class BadUserInput(ChatError):
    """Invalid input. ``fields`` maps argument names to lists of messages."""

    code = "BAD_USER_INPUT"
    http_status = 400
    default_message = "Invalid input."

    def __init__(self, message: str | None = None, fields: dict[str, list[str]] | None = None, **extensions):
        if fields:
            extensions["fields"] = fields
        super().__init__(message, **extensions)


class RateLimited(ChatError):
    code = "RATE_LIMITED"
    http_status = 429
    default_message = "Too many requests; try again later."

    def __init__(self, retry_after: int, message: str | None = None):
        super().__init__(message or f"Too many requests; retry in {retry_after} seconds.", retryAfter=retry_after)
        self.retry_after = retry_after


class RoomFull(ChatError):
    code = "ROOM_FULL"
    http_status = 409
    default_message = "This room is full."


class PayloadTooLarge(ChatError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413
    default_message = "The file is too large."


class UnsupportedMediaType(ChatError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415
    default_message = "This type of file is not allowed."


class ServiceUnavailable(ChatError):
    code = "SERVICE_UNAVAILABLE"
    http_status = 503
    default_message = "The service is temporarily unavailable; try again shortly."


def is_nul_character_error(exc: BaseException) -> bool:
    """psycopg2 refuses text with NUL characters (Postgres cannot store them) with a
    ValueError before anything is written; that is bad input, not a server fault
    (found by tests/test_fuzz.py in services mode)."""
    return isinstance(exc, ValueError) and "NUL (0x00)" in str(exc)


NUL_CHARACTER_MESSAGE = "Text must not contain NUL (U+0000) characters."
