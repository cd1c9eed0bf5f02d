"""Strawberry's private parts that the live path uses, in one place.

Strawberry offers no hook to run a subscription's later events outside its
per-operation task, nor to share a socket's group bookkeeping: what the fast
path and the engine's groups need is reached here, and only here. Guarded by
tests/schema/test_live_adapters.py: an upgrade that moves one of these fails
there, loudly.

- The protocol handlers (``operations`` of graphql-transport-ws, ``tasks`` of
  graphql-ws, each operation's ``task`` and ``completed``) tell which operation
  a resolver runs for and whether it is still open; the handlers register
  themselves on their consumer (``view``) so that the fast path finds them.
- ``Info._raw_info`` holds graphql-core's resolve info (the fragments and the
  coerced variables of the operation).
- Strawberry's ``ChannelsConsumer`` counts group references per socket in
  ``_group_refs`` under ``_group_lock`` and fans layer messages out to
  ``listen_queues``; the engine's groups share that count with
  ``listen_to_channel``, so that no subscription removes a group another one of
  the socket still needs.
- ``GraphQLWSConsumer.message_queue`` is the socket's inbound queue (replaced by
  a lighter one: idle memory per socket).
- ``StrawberryGraphQLCoreExecutionContext`` is the execution context Strawberry
  uses, extended by schema/live/shared_events.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import Info

__all__ = [
    "LegacyWSHandler",
    "StrawberryGraphQLCoreExecutionContext",
    "TransportWSHandler",
    "join_group",
    "leave_all_groups",
    "leave_group",
    "listen",
    "operation_of_task",
    "operation_open",
    "queued_messages",
    "resolve_info",
    "set_message_queue",
    "unlisten",
    "ws_handler",
]


# --- protocol handlers -----------------------------------------------------------------------


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """Strawberry's graphql-transport-ws handler, known to its consumer; each new
    operation first asks the consumer whether its user is still signed in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.view._ws_handler = self

    async def handle_subscribe(self, message) -> None:
        if await self.view.refuse_if_signed_out():
            return
        await super().handle_subscribe(message)


class LegacyWSHandler(BaseGraphQLWSHandler):
    """Strawberry's legacy graphql-ws handler, known to its consumer; each new
    operation first asks the consumer whether its user is still signed in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.view._ws_handler = self

    async def handle_start(self, message) -> None:
        if await self.view.refuse_if_signed_out():
            return
        await super().handle_start(message)


def ws_handler(consumer):
    """The protocol handler serving ``consumer``'s socket, or None."""
    return getattr(consumer, "_ws_handler", None)


def operation_of_task(handler, task: asyncio.Task | None) -> tuple[str, dict] | None:
    """The id of the handler's operation that ``task`` runs, and the fields that
    begin its result frames (``{"id": ..., "type": "next"}`` or, legacy,
    ``{"type": "data", "id": ...}``, in the protocol's key order); None if none."""
    if isinstance(handler, BaseGraphQLTransportWSHandler):
        for operation in handler.operations.values():
            if operation.task is task:
                return operation.id, {"id": operation.id, "type": "next"}
    elif isinstance(handler, BaseGraphQLWSHandler):
        for operation_id, operation_task in handler.tasks.items():
            if operation_task is task:
                return operation_id, {"type": "data", "id": operation_id}
    return None


def operation_open(handler, operation_id: str) -> bool:
    """Whether the operation still runs (not completed, stopped or replaced)."""
    if isinstance(handler, BaseGraphQLTransportWSHandler):
        operation = handler.operations.get(operation_id)
        return operation is not None and not operation.completed
    return operation_id in handler.tasks


# --- resolve info --------------------------------------------------------------------------


def resolve_info(info: Info):
    """graphql-core's ``GraphQLResolveInfo`` behind Strawberry's ``Info``."""
    return info._raw_info


# --- the consumer's groups and queues ---------------------------------------------------------


async def join_group(consumer, group: str) -> None:
    """Add the consumer's channel to ``group``, counted with Strawberry's own references."""
    async with consumer._group_lock:
        await consumer.channel_layer.group_add(group, consumer.channel_name)
        consumer._group_refs[group] += 1


async def leave_group(consumer, group: str) -> None:
    """Drop one reference to ``group``; the channel leaves it with the last one."""
    async with consumer._group_lock:
        consumer._group_refs[group] -= 1
        if consumer._group_refs[group] <= 0:
            del consumer._group_refs[group]
            with contextlib.suppress(Exception):  # a failing layer: its group expiry removes the channel
                await consumer.channel_layer.group_discard(group, consumer.channel_name)


async def leave_all_groups(consumer) -> None:
    """Leave every group still joined (a subscription cancelled mid-cleanup must not
    leave the socket's channel behind)."""
    async with consumer._group_lock:
        for group in list(consumer._group_refs):
            with contextlib.suppress(Exception):  # a failing layer: its group expiry removes the channel
                await consumer.channel_layer.group_discard(group, consumer.channel_name)
        consumer._group_refs.clear()


def listen(consumer, types: Iterable[str], queue) -> None:
    """Have the consumer's dispatch put every layer message of ``types`` in ``queue``."""
    for type_ in types:
        consumer.listen_queues[type_].add(queue)


def unlisten(consumer, types: Iterable[str], queue) -> None:
    for type_ in types:
        consumer.listen_queues[type_].discard(queue)


def set_message_queue(consumer, queue) -> None:
    """Replace the consumer's inbound frame queue."""
    consumer.message_queue = queue


def queued_messages(consumer) -> int:
    """How many inbound frames wait for the consumer's protocol handler."""
    return consumer.message_queue.qsize()
