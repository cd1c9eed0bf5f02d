"""Strawberry's private parts that the live path uses, in one place.

Strawberry offers no hook to run a subscription's later events outside its
per-operation task: what the fast path and the engine's take-over need is
reached here, and only here. Guarded by
tests/schema/test_live_adapters.py: an upgrade that moves one of these fails
there, loudly.

- The protocol handlers (``operations`` of graphql-transport-ws, ``tasks`` of
  graphql-ws, each operation's ``task`` and ``completed``) tell which operation
  a resolver runs for and whether it is still open; the handlers register
  themselves on their consumer (``view``) so that the fast path finds them.
- A subscription the live engine takes over outlives its task: the handlers keep
  it registered (``operations``/``tasks``), stop it on the client's
  ``complete``/``stop`` and on disconnect (``cleanup_operation``), and do not send
  the ``complete`` its ending task would (``Operation.completed``, and for
  graphql-ws its ``send_message``).
- ``Info._raw_info`` holds graphql-core's resolve info (the fragments and the
  coerced variables of the operation).
- The handlers' read loop (``handle``) is replaced: the consumer hands each frame
  to ``handle_frame`` from a task that lives only while frames wait, and ends the
  handler (``end_handler``) as the loop's end would (idle memory per socket).
- ``GraphQLWSConsumer.message_queue`` holds the frames waiting for the handler
  (a lighter queue than Strawberry's), and ``run_task`` the task that hands them
  to it: Strawberry's ``connect`` starts the handshake's there, and the consumer
  keeps a task there only while frames wait.
- ``ChannelsConsumer.listen_queues``, ``_group_refs`` and ``_group_lock`` are
  the per-socket bookkeeping of ``listen_to_channel``, which needs a channel per
  socket: our sockets have none, so every socket shares one empty set of them.
- ``StrawberryGraphQLCoreExecutionContext`` is the execution context Strawberry
  uses, extended by schema/live/shared_events.py.
- ``Schema._schema`` is the graphql-core schema Strawberry builds (the query cost
  walks it, schema/cost.py): Strawberry offers no public way to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import Info

__all__ = [
    "LegacyWSHandler",
    "StrawberryGraphQLCoreExecutionContext",
    "TransportWSHandler",
    "complete_taken_over",
    "end_handler",
    "graphql_core_schema",
    "handle_frame",
    "inbound_frames",
    "no_channel_listening",
    "operation_of_task",
    "operation_open",
    "resolve_info",
    "running_task",
    "set_message_queue",
    "set_running_task",
    "take_over",
    "ws_handler",
]


# --- protocol handlers -----------------------------------------------------------------------


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """Strawberry's graphql-transport-ws handler, known to its consumer; each new
    operation first asks the consumer whether its user is still signed in.

    A subscription the live engine took over (``take_over``) stays registered
    under its id (it counts towards the limit, its id stays taken) with no task
    of its own; the client's ``complete`` or the socket's end stops it here."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.view._ws_handler = self
        self.taken_over: dict[str, Callable[[], Awaitable[None]]] = {}

    async def handle(self) -> None:
        # Strawberry's read loop would wait on every socket for its next frame; the
        # consumer hands each frame to handle_frame instead, and ends the handler.
        self.on_request_accepted()
        await self.view.handle_frames()

    async def handle_subscribe(self, message) -> None:
        if await self.view.refuse_if_signed_out():
            return
        await super().handle_subscribe(message)

    async def handle_message(self, message) -> None:
        try:
            await super().handle_message(message)
        finally:
            forget_frame(message)

    async def handle_connection_init(self, message) -> None:
        await super().handle_connection_init(message)
        if self.connection_init_received:
            # Strawberry cancelled its timer; the cancelled task would stay on the
            # handler for the socket's lifetime, and with it the CancelledError's
            # traceback and the frames it holds (about a kilobyte per socket).
            self.connection_init_timeout_task = None

    def forget_id(self, id: str) -> None:
        self.taken_over.pop(id, None)
        super().forget_id(id)

    async def cleanup_operation(self, operation_id: str) -> None:
        stop = self.taken_over.pop(operation_id, None)
        if stop is None:
            await super().cleanup_operation(operation_id)
            return
        self.operations.pop(operation_id, None)
        await stop()


class LegacyWSHandler(BaseGraphQLWSHandler):
    """Strawberry's legacy graphql-ws handler, known to its consumer; each new
    operation first asks the consumer whether its user is still signed in.

    A subscription taken over by the live engine stays under its id in ``tasks``
    (with no task: the finished one would keep the operation's whole context
    alive), so that it counts towards the limit and ``stop`` reaches it; the
    ``complete`` Strawberry sends when that task ends is not sent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.view._ws_handler = self
        self.taken_over: dict[str, Callable[[], Awaitable[None]]] = {}
        self._quiet_completion: set[str] = set()

    async def handle(self) -> None:
        # As TransportWSHandler.handle: no read loop of its own.
        await self.view.handle_frames()

    async def handle_start(self, message) -> None:
        if await self.view.refuse_if_signed_out():
            return
        await super().handle_start(message)

    async def handle_message(self, message) -> None:
        try:
            await super().handle_message(message)
        finally:
            forget_frame(message)

    async def handle_async_results(self, operation_id, *args, **kwargs) -> None:
        try:
            await super().handle_async_results(operation_id, *args, **kwargs)
        finally:
            # Strawberry forgets the operation when its task ends; a taken-over one lives on.
            if operation_id in self.taken_over:
                self.tasks.setdefault(operation_id, None)

    async def send_message(self, message) -> None:
        if message.get("type") == "complete" and message.get("id") in self._quiet_completion:
            self._quiet_completion.discard(message["id"])
            return
        await super().send_message(message)

    async def cleanup_operation(self, operation_id: str) -> None:
        stop = self.taken_over.pop(operation_id, None)
        if stop is None:
            await super().cleanup_operation(operation_id)
            return
        self.tasks.pop(operation_id, None)
        await stop()
        # What Strawberry answers a stopped subscription.
        await super().send_message({"type": "complete", "id": operation_id})


async def handle_frame(handler, text: str | None) -> bool:
    """Handle one inbound frame (``text``; None for a binary frame) as the protocol
    handler's own read loop would; False when the frame ended the handler (the
    socket is closing, and ``end_handler`` is to be called)."""
    transport = isinstance(handler, BaseGraphQLTransportWSHandler)
    if text is None:
        if transport:
            await handler.handle_invalid_message("WebSocket message type must be text")
        else:
            await handler.websocket.close(code=1002, reason="WebSocket message type must be text")
        return False
    try:
        message = handler.view.decode_json(text)
    except json.JSONDecodeError:
        if transport:
            await handler.handle_invalid_message("WebSocket message must be valid JSON")
            return False
        return True  # the legacy protocol ignores what it cannot parse
    await handler.handle_message(message)
    return True


async def end_handler(handler) -> None:
    """What the protocol handler does when its read loop ends: stop every operation."""
    if isinstance(handler, BaseGraphQLTransportWSHandler):
        await handler.shutdown()
        return
    keep_alive = handler.keep_alive_task
    if keep_alive is not None:
        keep_alive.cancel()
        with contextlib.suppress(BaseException):
            await keep_alive
    await handler.cleanup()


def forget_frame(message) -> None:
    """Empty a decoded frame once its handler has taken what it needs (an operation
    keeps its query and variables, the context its connection parameters).
    Strawberry's read loop holds the last frame it decoded until the next one
    arrives: on an idle socket, its subscribe message for good."""
    if type(message) is dict:
        message.clear()


def take_over(handler, operation_id: str, stop: Callable[[], Awaitable[None]]) -> bool:
    """Keep the subscription ``operation_id`` open once its task ends (its resolver
    returns): the live engine delivers its events from now on; ``stop`` is called
    when the client stops it or the socket closes. False if it is no longer open."""
    if isinstance(handler, TransportWSHandler):
        operation = handler.operations.get(operation_id)
        if operation is None or operation.completed:
            return False
        # The ending task completes the old object, silently; the new one (with
        # no query text and no task kept: a finished task holds on to the
        # operation's whole context) is the live operation.
        live = Operation(handler, operation_id, "", None, None)
        operation.completed = True
        handler.operations[operation_id] = live
    elif isinstance(handler, LegacyWSHandler):
        if operation_id not in handler.tasks:
            return False
        handler._quiet_completion.add(operation_id)
    else:
        return False
    handler.taken_over[operation_id] = stop
    return True


async def complete_taken_over(handler, operation_id: str) -> None:
    """End a taken-over subscription normally: the protocol's ``complete``."""
    if isinstance(handler, TransportWSHandler):
        operation = handler.operations.get(operation_id)
        if operation is not None:
            await operation.send_operation_message({"id": operation_id, "type": "complete"})
    elif handler.taken_over.pop(operation_id, None) is not None:
        handler.tasks.pop(operation_id, None)
        await handler.send_message({"type": "complete", "id": operation_id})


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


# --- the graphql-core schema -----------------------------------------------------------------


def graphql_core_schema(schema):
    """graphql-core's ``GraphQLSchema`` that Strawberry's ``schema`` executes."""
    return schema._schema


# --- resolve info --------------------------------------------------------------------------


def resolve_info(info: Info):
    """graphql-core's ``GraphQLResolveInfo`` behind Strawberry's ``Info``."""
    return info._raw_info


# --- the consumer's inbound queue --------------------------------------------------------------


def set_message_queue(consumer, queue) -> None:
    """Replace the consumer's inbound frame queue."""
    consumer.message_queue = queue


def inbound_frames(consumer):
    """The consumer's queue of frames waiting for its protocol handler."""
    return consumer.message_queue


def running_task(consumer) -> asyncio.Task | None:
    """The task handing the consumer's frames to its protocol handler, if one runs
    (Strawberry's ``run_task``: its ``connect`` puts the handshake's there)."""
    return consumer.run_task


def set_running_task(consumer, task: asyncio.Task | None) -> None:
    """Record the task that hands the consumer's frames to its handler (None: none runs)."""
    consumer.run_task = task


class _NothingListens(dict):
    """``listen_queues`` of a socket without a channel: no queue listens to any
    message type (``ChannelsConsumer.dispatch`` reads it, and finds none)."""

    def __missing__(self, key):
        return ()

    def __setitem__(self, key, value):
        raise TypeError("a socket without a channel of its own cannot listen to the channel layer")


_NOTHING_LISTENS = _NothingListens()


def no_channel_listening(consumer) -> None:
    """Drop the consumer's own bookkeeping of ``listen_to_channel`` (a dict, a
    Counter and a lock per socket). The method refuses to run without a channel
    layer before it reads any of them; the dispatch of a layer message, which no
    socket without a channel receives, would find no queue listening."""
    consumer.listen_queues = _NOTHING_LISTENS
    consumer._group_refs = None
    consumer._group_lock = None
