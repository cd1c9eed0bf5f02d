"""Relay node IDs without an annotation scan per resolved ``id``.

Strawberry's ``Node.resolve_id_attr`` caches the attribute that holds a node's
id only when the type annotates one with ``NodeID``. strawberry-django's types
use the model's ``pk`` without that annotation, so every ``id`` resolved
re-scans and re-evaluates every annotation of the type's MRO (``eval_type``
compiles each one) before falling back to ``pk``. Profiled under the bench
(bench/, issue 8): about 3 ms per ``id`` on this 2-core machine, 1.5 of the
2.25 s of five 50-message history pages and 3.6 of the 4.9 s spent executing
subscription events. Deciding once, when the schema is built, is equivalent:
the annotations of a class do not change after import.
"""

from __future__ import annotations

from strawberry import relay
from strawberry.relay.exceptions import NodeIDAnnotationError


def _node_types(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_node_types(sub))
    return found


def cache_node_id_attrs() -> list[type]:
    """Fix ``_id_attr`` on every strawberry-django Node type: the ``NodeID``
    attribute if one is annotated, else ``pk`` (what strawberry-django falls
    back to on every call). Returns the types it set."""
    fixed = []
    for cls in _node_types(relay.Node):
        if not hasattr(cls, "__strawberry_django_definition__") or cls.__dict__.get("_id_attr") is not None:
            continue
        try:
            cls._id_attr = relay.Node.resolve_id_attr.__func__(cls)
        except NodeIDAnnotationError:
            cls._id_attr = "pk"
        fixed.append(cls)
    return fixed
