"""Logs that are safe to ship and easy to query.

- ``redact()`` removes secrets from any log text: ``Authorization`` header values,
  JWTs wherever they appear, and the values of ``password``-, ``token``- and
  ``secret``-like keys (JSON, GraphQL arguments, ``key=value``). Both formatters
  below apply it to the whole formatted record, tracebacks included, and
  ``RedactSecretsFilter`` does it for handlers configured elsewhere.
- ``JsonFormatter`` writes one JSON object per line; the ``fields`` given as
  ``extra={"fields": {...}}`` become top-level keys (secrets redacted by key).
- ``RequestLogMiddleware`` logs one line per HTTP request on ``chat.request``:
  method, path (never the query string, which may hold ``?token=``), status,
  duration, user id, client address and the GraphQL operations it carried
  (name, type, error codes; recorded by ``schema.operation_log.OperationLog``,
  which also logs each WebSocket operation on ``chat.operation``).
- ``RequestIdMiddleware`` gives each HTTP request an id (the client's sane
  ``X-Request-ID`` or a new one, echoed in the response header); both formatters
  put the current id (chat/request_id.py) on every line, WebSocket connections
  included (schema/live/consumer.py binds one per connection).
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.functional import empty

from chat import request_id

REDACTED = "[REDACTED]"

# Keys whose values are secrets, wherever they appear (lowercase, no separators).
SECRET_KEYS = {
    "password",
    "newpassword",
    "oldpassword",
    "currentpassword",
    "password1",
    "password2",
    "token",
    "authtoken",
    "accesstoken",
    "refreshtoken",
    "authorization",
    "secret",
    "secretkey",
    "apikey",
    "cookie",
    "setcookie",
}


def _is_secret_key(key: str) -> bool:
    return re.sub(r"[^a-z0-9]", "", key.lower()) in SECRET_KEYS


_KEY_NAMES = (
    r"(?:new_?|old_?|current_?)?password[12]?|(?:auth|access|refresh)?_?token|authorization|"
    r"secret(?:_?key)?|api_?key|set-?cookie|cookie"
)
# key, optional closing quote of the key, separator (:, = or a header's ": "), then a
# quoted value (JSON/GraphQL string with escapes) or a bare one.
_KEY_VALUE = re.compile(
    rf"""(?P<key>["']?\b(?:{_KEY_NAMES})\b["']?\s*[:=]\s*)"""
    r"""(?!\[REDACTED\])(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|(?:(?:Bearer|JWT|Basic)\s+)?[^\s"',;&})\]]+)""",
    re.IGNORECASE,
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"\b(Bearer|JWT)\s+[A-Za-z0-9._~+/=-]{8,}")


def _redact_key_value(match: re.Match) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in {'"', "'"} else ""
    return f"{match.group('key')}{quote}{REDACTED}{quote}"


def redact(text: str) -> str:
    """``text`` without secrets (idempotent)."""
    if not text:
        return text
    text = _KEY_VALUE.sub(_redact_key_value, text)
    text = _JWT.sub(REDACTED, text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


def redact_value(value: Any, key: str | None = None) -> Any:
    """A JSON-able ``value`` with secret keys' values and secret-looking strings redacted."""
    if key is not None and _is_secret_key(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record's message without secrets (for any handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logged as it is
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if getattr(record, "fields", None):
            record.fields = redact_value(record.fields)
        return True


NO_REQUEST = "-"


class RedactingFormatter(logging.Formatter):
    """The plain text formatter, without secrets (tracebacks included); ``%(request_id)s``
    is the id of the request or connection being served (``-`` outside one)."""

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = request_id.current() or NO_REQUEST
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": request_id.current(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(redact_value(fields))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


request_logger = logging.getLogger("chat.request")

REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """Binds the request's id (the client's ``X-Request-ID`` if sane, else a new one)
    for everything that serves it, and echoes it in the response's ``X-Request-ID``
    (outermost middleware: every log line of the request carries it)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        token = self._bind(request)
        try:
            response = self.get_response(request)
        finally:
            request_id.unbind(token)
        response[REQUEST_ID_HEADER] = request.request_id
        return response

    async def _acall(self, request):
        token = self._bind(request)
        try:
            response = await self.get_response(request)
        finally:
            request_id.unbind(token)
        response[REQUEST_ID_HEADER] = request.request_id
        return response

    @staticmethod
    def _bind(request):
        request.request_id = request_id.accept(request.headers.get(REQUEST_ID_HEADER))
        return request_id.bind(request.request_id)


def _client_address(request) -> str | None:
    client = request.META.get("REMOTE_ADDR")
    return str(client) if client else None


class RequestLogMiddleware:
    """One structured line per HTTP request (outermost middleware: full duration)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._log(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._log(request, response, started)
        return response

    @staticmethod
    def _log(request, response, started: float) -> None:
        user = getattr(request, "user", None)
        # ``request.user`` may be a lazy object resolved from the session: only
        # read it when something already resolved it (the GraphQL view sets it).
        user_id = None
        if user is not None and getattr(user, "_wrapped", None) is not empty:
            try:
                user_id = user.pk if user.is_authenticated else None
            except Exception:  # noqa: BLE001 - never fail a request for its log line
                user_id = None
        operations = getattr(request, "graphql_operations", None) or []
        fields = {
            "event": "request",
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "user_id": user_id,
            "client": _client_address(request),
            "operation": operations[0]["name"] if operations else None,
            "operations": operations or None,
        }
        level = logging.WARNING if response.status_code >= 500 else logging.INFO
        request_logger.log(
            level, "%s %s %s", request.method, request.path, response.status_code, extra={"fields": fields}
        )
