"""The root GraphQL schema: one per process, merged from the domains."""

from __future__ import annotations

import strawberry
import strawberry_django
from django.conf import settings
from strawberry import relay
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry_django.optimizer import DjangoOptimizerExtension

from schema.accounts.mutations import AccountMutations
from schema.accounts.queries import AccountQueries
from schema.attachments.mutations import AttachmentMutations
from schema.cost import CostLimit
from schema.errors import TypedErrors
from schema.events.mutations import EventMutations
from schema.events.subscriptions import EventSubscriptions
from schema.events.types import EVENT_TYPES
from schema.limits import batching_config, limit_extensions, scalar_overrides
from schema.live.shared_events import SharedEventExecutionContext
from schema.messages.mutations import MessageMutations
from schema.messages.queries import MessageQueries
from schema.moderation.mutations import ModerationMutations
from schema.node_ids import cache_node_id_attrs
from schema.notifications.mutations import NotificationMutations
from schema.notifications.queries import NotificationQueries
from schema.operation_log import OperationLog
from schema.persisted import TrustedDocumentsOnly, trusted_documents
from schema.pins.mutations import PinMutations
from schema.reactions.mutations import ReactionMutations
from schema.rooms.mutations import RoomMutations
from schema.rooms.queries import RoomQueries
from schema.search.queries import SearchQueries


@strawberry.type
class NodeQueries:
    node: relay.Node | None = strawberry_django.node(
        description="Any object by its global ID, or null if it does not exist or is not visible to you."
    )


def _merge(name: str, types: tuple[type, ...]):
    types = tuple(t for t in types if t.__strawberry_definition__.fields)
    return merge_types(name, types) if types else None


Query = _merge("Query", (AccountQueries, RoomQueries, MessageQueries, SearchQueries, NotificationQueries, NodeQueries))
Mutation = _merge(
    "Mutation",
    (
        AccountMutations,
        RoomMutations,
        MessageMutations,
        ReactionMutations,
        PinMutations,
        NotificationMutations,
        EventMutations,
        AttachmentMutations,
        ModerationMutations,
    ),
)
Subscription = _merge("Subscription", (EventSubscriptions,))


class QuerySetOptimizer(DjangoOptimizerExtension):
    """strawberry-django's optimizer without its per-field ``resolve`` hook.

    The hook wraps every field of every response in middleware (a third of a
    history page's execution time, issue 8) to catch plain resolvers that return
    a QuerySet. Ours never do: lists and connections are strawberry-django fields,
    which optimize their own querysets (the pinned SQL counts in the tests hold
    that line)."""

    resolve = SchemaExtension.resolve


def extensions() -> list:
    # OperationLog first: extensions exit in reverse order, so it sees the typed errors.
    # After the validation cache (in limit_extensions): TrustedDocumentsOnly replaces its
    # verdict for an untrusted document, CostLimit costs valid documents only.
    result = [OperationLog, *limit_extensions(), TrustedDocumentsOnly, CostLimit, TypedErrors, QuerySetOptimizer]
    if not settings.GRAPHQL_INTROSPECTION:
        result.append(DisableIntrospection)
    if settings.TRACING_ENABLED:  # outermost: its operation span covers the others' work
        from schema.tracing import GraphQLTracing

        result.insert(0, GraphQLTracing)
    return result


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=EVENT_TYPES,  # the RoomEvent implementations (returned through the interface)
    extensions=extensions(),
    config=StrawberryConfig(batching_config=batching_config()),
    scalar_overrides=scalar_overrides(),  # Upload accepts files only (schema/limits.py)
    # Subscription events executed once and shared by identical subscribers (schema/live/shared_events.py).
    execution_context_class=SharedEventExecutionContext if settings.GRAPHQL_SHARED_EVENT_RESULTS else None,
)
cache_node_id_attrs()  # once every type is imported: see schema/node_ids.py
trusted_documents()  # a manifest that does not load stops the server at start, not at a request
