"""Structured operation logs: name, type, user, duration and error codes.

Over HTTP the operations are attached to the request and logged in its one
line by ``backend.logging.RequestLogMiddleware``; over WebSocket each
operation is logged on ``chat.operation`` when it ends. Variables are never
logged (they hold passwords and tokens).

It also feeds the metrics (chat/metrics.py): the duration of each query and
mutation, and the subscriptions running on WebSockets (by subprotocol; the HTTP
subscription transports count theirs with ``metrics.subscription_opened``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from chat import metrics

logger = logging.getLogger("chat.operation")


class OperationLog(SchemaExtension):
    # Set (on the instance) while the operation counts as a running subscription.
    _subscription_protocol: str | None = None

    def on_execute(self) -> Iterator[None]:
        # The operation's type is known from here on (the document is parsed).
        ws = getattr(self.execution_context.context, "ws", None)
        if ws is not None and self.execution_context.operation_type == OperationType.SUBSCRIPTION:
            self._subscription_protocol = getattr(ws, "graphql_protocol", None)
            metrics.subscription_opened(self._subscription_protocol)
        yield

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if "_subscription_protocol" in self.__dict__ and metrics.subscription_ends_with_operation():
                metrics.subscription_closed(self._subscription_protocol)
        context = self.execution_context.context
        result = self.execution_context.result
        errors = getattr(result, "errors", None) or []
        try:
            operation_type = self.execution_context.operation_type.value
        except Exception:  # noqa: BLE001 - the document did not parse
            operation_type = None
        user = getattr(context, "user", None)
        entry = {
            "name": self.execution_context.operation_name,
            "type": operation_type,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "error_codes": sorted({(e.extensions or {}).get("code", "UNKNOWN") for e in errors}) or None,
        }
        if operation_type in ("query", "mutation"):
            transport = "websocket" if getattr(context, "ws", None) is not None else "http"
            metrics.operation_finished(transport, operation_type, entry["name"], time.perf_counter() - started)
        request = getattr(context, "request", None)
        if getattr(context, "ws", None) is None and request is not None and hasattr(request, "META"):
            operations = getattr(request, "graphql_operations", None)
            if operations is None:
                operations = request.graphql_operations = []
            operations.append(entry)
            return
        user_id = user.pk if user is not None and getattr(user, "is_authenticated", False) else None
        logger.info(
            "operation %s",
            entry["name"] or "(anonymous)",
            extra={
                "fields": {
                    "event": "operation",
                    "transport": "ws" if getattr(context, "ws", None) is not None else "direct",
                    "user_id": user_id,
                    **entry,
                }
            },
        )
