"""The cursor connection every list of the API uses: keyset cursors (no OFFSET),
default and maximum page sizes from settings, and bad arguments answered as
``BAD_USER_INPUT`` instead of internal errors."""

from __future__ import annotations

from typing import Any

import strawberry
from django.conf import settings
from strawberry import relay
from strawberry_django.relay import DjangoCursorConnection

from chat.errors import BadUserInput


@strawberry.type(
    name="Connection",
    description=(
        "A page of a list. Pass `first` (default 20, at most 100) and the `endCursor` of the previous "
        "page as `after` to page forward; `last` and `before` page backward."
    ),
)
class PageConnection(DjangoCursorConnection[relay.NodeType]):
    @classmethod
    def resolve_connection(
        cls,
        nodes,
        *,
        info,
        before: str | None = None,
        after: str | None = None,
        first: int | None = None,
        last: int | None = None,
        max_results: int | None = None,
        **kwargs: Any,
    ):
        limit = settings.PAGE_SIZE_MAX
        for name, value in (("first", first), ("last", last)):
            if value is not None and not 0 <= value <= limit:
                raise BadUserInput(f"`{name}` must be between 0 and {limit}.", fields={name: [f"0 to {limit}."]})
        if first is None and last is None:
            first = settings.PAGE_SIZE_DEFAULT
        try:
            return super().resolve_connection(
                nodes,
                info=info,
                before=before,
                after=after,
                first=first,
                last=last,
                max_results=limit,
                **kwargs,
            )
        except ValueError:
            raise BadUserInput(
                "Invalid cursor.", fields={"after" if after else "before": ["Invalid cursor."]}
            ) from None
