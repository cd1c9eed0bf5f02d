"""OpenTelemetry spans of GraphQL operations: Strawberry's extension (an operation
span with parsing, validation and resolver spans under it, inside Django's request
span), added only when tracing is on (backend/tracing.py; nothing of OpenTelemetry
is imported otherwise).

Without secrets: no argument values on resolver spans (they hold passwords and
tokens), and no document on the operation span (a document may hold them inline).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from strawberry.extensions.tracing import OpenTelemetryExtension


def _no_argument_values(arguments: dict, info) -> dict:
    return {}


class GraphQLTracing(OpenTelemetryExtension):
    def __init__(self, *, execution_context=None) -> None:
        super().__init__(execution_context=execution_context, arg_filter=_no_argument_values)

    def on_operation(self) -> Iterator[None]:
        operation = super().on_operation()
        # Strawberry records the document as the span's "query" attribute while it starts the span.
        document, self.execution_context.query = self.execution_context.query, None
        try:
            next(operation)
        finally:
            self.execution_context.query = document
        yield
        with contextlib.suppress(StopIteration):
            next(operation)
