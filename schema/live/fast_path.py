"""The WebSocket sink of a subscription (``chat.realtime.Sink``): live stored
events written straight to the socket as the protocol's frame, rendered once and
shared by the subscribers who would receive exactly the same one.

The process receives each event once (``chat.realtime.Hub``) and offers it to
every local subscription of its room in turn (``RoomStream.offer``); one that is
idle and whose next event this is in its room's order hands it to its sink here.
The first subscriber of an event executes the operation's selection on it (as
graphql-core does for each event of a subscription); the payload JSON, encoded
once, is shared under the key of shared_events.py (event, operation, variables
and, for viewer-dependent selections, viewer: rendered with a placeholder cursor,
it gets each subscriber's own cursor written in) and sent in the protocol's own
frame around each subscriber's operation id. No task, queue or
generator of the subscription is involved. Anything else (gaps, joins and
leaves, a result with errors, ephemeral events) takes the subscription's own
path through Strawberry. Who receives an event is decided per subscriber by
chat/realtime.py; only the rendering is shared.

The frames are byte for byte what Strawberry sends (tests/schema/test_fast_path.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref

from graphql import ExecutionResult, GraphQLError, execute_subscription_event
from strawberry.types import Info

from chat import metrics
from chat.errors import ServiceUnavailable
from chat.realtime import Delivery, Idle
from schema.errors import TypedErrors, as_chat_error
from schema.events.types import build_event
from schema.live import strawberry_adapter
from schema.live.shared_events import (
    CURSOR_SLOT,
    event_identity,
    share_key,
    shared_payload,
    store_payload,
    subscription_executor,
    subscription_signature,
    with_cursor,
)

# Shared executions under way, by share key, until they finish (their payload JSON).
_rendering: dict[tuple, asyncio.Future] = {}


class _Renderer:
    """What executes a subscription's selection on an event: graphql-core's executor
    of the operation and the operation's context (Strawberry's execution hooks, e.g.
    the optimizer's), for executions made outside the operation's own task."""

    __slots__ = ("__weakref__", "context", "cursor", "executor", "frame", "message", "payload", "prefix")

    def __init__(self, executor):
        self.executor = executor
        self.context = contextvars.copy_context()
        # The last event rendered, kept for the rest of its fan-out: the hub hands the
        # same message to each subscriber in turn, so they need neither the shared
        # lookup nor an await. ``frame`` is the last frame made of it, for ``prefix``
        # and ``cursor``.
        self.message = self.payload = self.prefix = self.cursor = self.frame = None

    def remember(self, message: dict, payload: str) -> None:
        self.message, self.payload, self.prefix, self.cursor, self.frame = message, payload, None, None, None

    def frame_with(self, prefix: str, cursor: str) -> str:
        """The last event's frame for an operation's ``prefix`` (its id, the protocol's
        type) and ``cursor``: subscribers of a room at the same position, whose
        clients number their operations alike, share one string."""
        if cursor != self.cursor or prefix != self.prefix:
            payload = with_cursor(self.payload, cursor)
            self.prefix, self.cursor, self.frame = prefix, cursor, f'{prefix},"payload":{payload}}}'
        return self.frame


# Subscriptions whose results do not depend on the viewer render alike: they share
# one renderer (and the operation state it keeps alive) per signature, while any is live.
_renderers: weakref.WeakValueDictionary[tuple, _Renderer] = weakref.WeakValueDictionary()


class FastPath:
    """Delivers stored events to one subscription operation of one socket as
    shared frames."""

    __slots__ = ("consumer", "counted", "field", "handler", "idle", "operation_id", "prefix", "renderer", "signature")

    # Takes over its subscription once it is live (chat.realtime.DrivingSink).
    drives = True

    def __init__(self, consumer, handler, operation_id: str, prefix: str, signature: tuple, executor, field: str):
        self.consumer = consumer
        self.field = field  # the subscription field's response key, the path of its errors
        self.counted = False  # in the open-subscriptions gauge since the take-over
        self.idle = None  # the subscription, once taken over
        self.handler = handler
        self.operation_id = operation_id
        self.prefix = prefix
        self.signature = signature
        viewer_independent = signature[-1] is None
        renderer = _renderers.get(signature) if viewer_independent else None
        if renderer is None:
            renderer = _Renderer(executor)
            if viewer_independent:
                _renderers[signature] = renderer
        self.renderer = renderer

    @classmethod
    def for_operation(cls, info: Info) -> FastPath | None:
        """The fast path of the subscription being resolved (call it from its
        resolver), or None when the transport or the operation does not allow one."""
        consumer = getattr(info.context, "ws", None)
        handler = strawberry_adapter.ws_handler(consumer)
        executor = subscription_executor.get()
        if handler is None or executor is None or not getattr(consumer, "fast_path_enabled", False):
            return None
        raw = strawberry_adapter.resolve_info(info)
        signature = subscription_signature(
            raw.schema, raw.operation, raw.fragments, raw.variable_values, info.context.user
        )
        if signature is None:
            return None
        operation = strawberry_adapter.operation_of_task(handler, asyncio.current_task())
        if operation is None:
            return None
        operation_id, frame_start = operation
        prefix = consumer.encode_json(frame_start)[:-1]
        return cls(consumer, handler, operation_id, prefix, signature, executor, info.path.key)

    def _open(self) -> bool:
        return strawberry_adapter.operation_open(self.handler, self.operation_id)

    async def deliver(self, delivery: Delivery) -> bool:
        """Send ``delivery``'s frame; False (nothing sent) if the normal path must
        take it: the operation is over, or the execution has errors."""
        if delivery.seq is None or not self._open():
            return False
        renderer = self.renderer
        if renderer.message is not delivery.message:
            payload = await slotted_event_payload(
                delivery, self.signature, renderer.executor, renderer.context, self.consumer.encode_json
            )
            if payload is None or not self._open():
                return False
            renderer.remember(delivery.message, payload)
        await self.consumer.send(text_data=renderer.frame_with(self.prefix, delivery.cursor))
        return True

    async def close(self, code: int, reason: str) -> None:
        await self.consumer.close(code=code, reason=reason)

    # --- the subscription taken over (chat.realtime.DrivingSink) ----------------------

    def take_over(self, idle: Idle) -> bool:
        """Own the subscription from now on (its resolver returns): Strawberry's
        operation task, generators and extension state go; the engine resumes the
        subscription only when something arrives for it."""

        self.idle = idle
        if not strawberry_adapter.take_over(self.handler, self.operation_id, self._stop):
            self.idle = None
            return False
        metrics.subscription_handed_over()
        self.counted = True
        return True

    async def _stop(self) -> None:
        await self.idle.stop()
        self._ended()

    def _ended(self) -> None:
        if self.counted:
            self.counted = False
            metrics.subscription_closed(getattr(self.consumer, "graphql_protocol", None))

    async def send(self, delivery: Delivery) -> None:
        """Write any delivery: shared when it can be, else executed for this subscriber
        (ephemeral events, results with errors), as Strawberry would send it."""
        if await self.deliver(delivery) or not self._open():
            return
        result = await execute_event(self.renderer.executor, self.renderer.context, delivery)
        payload = {"data": result.data}
        if result.errors:
            payload["errors"] = typed_errors(result.errors)
        await self._send_payload(payload)

    async def complete(self) -> None:
        self._ended()
        await strawberry_adapter.complete_taken_over(self.handler, self.operation_id)

    async def fail(self, error: Exception) -> None:
        """The subscription's source failed. A backing service (the event log to read
        while the database is down): close the socket with 1013, and the client
        reconnects and resumes from its cursor, as over Strawberry's own path
        (schema.live.consumer.service_failures_close_the_socket). Anything else: an
        error result, then the end, as Strawberry ends a subscription whose source raised."""
        if isinstance(as_chat_error(error), ServiceUnavailable):
            await self.consumer.try_again_later(wait=False)  # the disconnect stops the operation
        elif self._open():
            located = GraphQLError(str(error), path=[self.field], original_error=error)
            await self._send_payload({"data": None, "errors": typed_errors([located])})
            await self.complete()

    async def _send_payload(self, payload: dict) -> None:
        await self.consumer.send(text_data=f'{self.prefix},"payload":{self.consumer.encode_json(payload)}}}')


async def execute_event(executor, context: contextvars.Context, delivery: Delivery) -> ExecutionResult:
    """What graphql-core does for each event of a subscription, with the operation's
    ``executor``, in a copy of the operation's ``context`` (its execution hooks),
    from whichever task delivers (the result is shared by SharedEventExecutionContext)."""

    async def run() -> ExecutionResult:
        per_event = executor.build_per_event_executor(await build_event(delivery))
        result = execute_subscription_event(per_event)
        return await result if per_event.is_awaitable(result) else result

    return await asyncio.create_task(run(), context=context.copy())


async def shared_event_payload(
    delivery: Delivery, signature: tuple, executor, context: contextvars.Context, encode
) -> str | None:
    """The JSON of ``{"data": ...}`` for the stored event ``delivery`` under ``signature``
    (shared_events.py), executed once for every subscriber of every transport who
    would get the same one whatever their cursor, encoded once with ``encode``, with
    ``delivery``'s cursor written in; None if the execution has errors (each
    subscriber's own path takes it then)."""
    payload = await slotted_event_payload(delivery, signature, executor, context, encode)
    return None if payload is None else with_cursor(payload, delivery.cursor)


async def slotted_event_payload(
    delivery: Delivery, signature: tuple, executor, context: contextvars.Context, encode
) -> str | None:
    """``shared_event_payload`` with ``CURSOR_SLOT`` where the cursor goes.

    An execution is announced at once: the other subscribers of the event reach
    this point in the same turn of the event loop, before it has even started,
    and wait for it rather than start their own."""
    key = share_key(event_identity(delivery.message), CURSOR_SLOT, signature)
    payload = shared_payload(key, encode)
    if payload is None:
        pending = _rendering.get(key)
        if pending is not None:
            payload = await asyncio.shield(pending)
        else:
            slotted = Delivery(message=delivery.message, cursor=CURSOR_SLOT)
            payload = await _render(key, executor, context, slotted, encode)
    return payload


async def _render(key: tuple, executor, context: contextvars.Context, delivery: Delivery, encode) -> str | None:
    done = asyncio.get_running_loop().create_future()
    _rendering[key] = done
    payload = None
    try:
        result = await execute_event(executor, context, delivery)
        if not result.errors:
            payload = store_payload(key, encode({"data": result.data}))
        return payload
    finally:
        del _rendering[key]
        done.set_result(payload)


def typed_errors(errors: list[GraphQLError]) -> list[dict]:
    """Errors as the schema's error extension gives them to clients (codes, masking)."""
    masking = TypedErrors()
    masking.execution_context = _NO_PRE_EXECUTION_ERRORS
    return [masking.anonymise_error(error).formatted for error in errors]


class _NoPreExecutionErrors:
    pre_execution_errors = None


_NO_PRE_EXECUTION_ERRORS = _NoPreExecutionErrors()
