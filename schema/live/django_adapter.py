"""Django's prefetch cache, filled from objects already at hand.

A live event carries a snapshot of its message, attachments included, and the
message is rebuilt from it (schema/events/types.py): its ``attachments`` must be
the snapshot's, read without a query, as if ``prefetch_related("attachments")``
had fetched them. Django has no public way to fill a relation's prefetch cache
without querying (``prefetch_related_objects`` always queries), so this fills it
the way Django's prefetching does: the instance's ``_prefetched_objects_cache``
maps the relation to a queryset whose ``_result_cache`` holds the objects and
whose ``_prefetch_done`` is set. Guarded by tests/schema/test_live_adapters.py
(``TestDjango``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet


def set_prefetched(instance: Model, relation: str, queryset: QuerySet, objects: list[Any]) -> None:
    """Make ``instance.<relation>.all()`` answer ``objects`` without a query.
    ``queryset`` is the relation's (its filter), so that a chained ``filter()``
    still asks the database the right question."""
    queryset._result_cache = objects
    queryset._prefetch_done = True
    cache = getattr(instance, "_prefetched_objects_cache", None)
    if cache is None:
        cache = instance._prefetched_objects_cache = {}
    cache[relation] = queryset
