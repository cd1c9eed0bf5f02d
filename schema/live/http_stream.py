"""Subscriptions over HTTP: GraphQL over Server-Sent Events (the graphql-sse
protocol, distinct-connections mode) and Apollo's multipart subscriptions, on
the same engine as the WebSocket (``chat.realtime``).

A request to /graphql/ whose ``Accept`` asks for ``text/event-stream`` or for
``multipart/mixed;subscriptionSpec=1.0`` is answered here with a streaming
response. The operation goes through the schema as any other (persisted
queries, validation, cost limit, the JWT of the ``Authorization`` header);
a request error (it does not parse or validate, or it is too expensive)
answers 400 with a GraphQL error response before any stream starts.

The subscription resolver finds this stream in its context
(``HttpSubscription.for_operation``) and passes it to the engine as its
``Sink``: live events in order are rendered once per (event, cursor,
operation, variables[, viewer]) exactly like the WebSocket's fast path
(schema/live/shared_events.py) and written as frames; anything the sink
declines takes Strawberry's own pipeline and is written when it comes out.
Each stored event's SSE frame carries ``id: <cursor>``, so a reconnecting
EventSource or graphql-sse client sends it back as ``Last-Event-ID``, which
``roomEvents`` takes as its ``after``: the missed events are replayed, exactly
once and in order.

What a long HTTP response needs besides: keep-alives (SSE comments, multipart
``{}`` parts) so that proxies keep the connection; the user's revocation
(password change, "log out everywhere") ends the stream with an
``UNAUTHENTICATED`` error; a client that stops reading is cut off once
``WS_MAX_BUFFERED_BYTES`` wait unsent in daphne or ``MAX_QUEUED_FRAMES`` in the
stream; and a client that goes away stops the subscription (Django cancels the
response, the subscription leaves the process's groups).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import close_old_connections
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.types import Info
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from chat import lifecycle, metrics, realtime, tokens
from chat.errors import Unauthenticated
from chat.realtime import Delivery
from schema.live import daphne_adapter, strawberry_adapter
from schema.live.fast_path import shared_event_payload
from schema.live.shared_events import subscription_executor, subscription_signature
from schema.live.twisted_adapter import unsent_bytes

logger = logging.getLogger(__name__)

# Keep-alive periods: SSE comments every 15 s (below the usual 60 s proxy read
# timeouts), multipart `{}` parts every 5 s (what Apollo's clients expect).
SSE_HEARTBEAT = 15.0
MULTIPART_HEARTBEAT = 5.0
# Frames written by the engine but not yet handed to the server.
MAX_QUEUED_FRAMES = 1000
# Where the ASGI ``send`` of the request is kept (``with_send_in_scope``), to see
# how much daphne holds unsent for a slow client.
SEND_SCOPE_KEY = "chat.http_send"

REVOKED_ERROR = {"message": "Token has been revoked.", "extensions": {"code": "UNAUTHENTICATED"}}
UNAVAILABLE_ERROR = {
    "message": "Real-time service unavailable; reconnect.",
    "extensions": {"code": "SERVICE_UNAVAILABLE"},
}


class SSEFraming:
    """graphql-sse, distinct connections: ``next`` events, then one ``complete``."""

    protocol = "sse"
    headers = {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache, no-transform",
        "X-Accel-Buffering": "no",  # nginx: pass each frame on at once
    }

    @staticmethod
    def accepts(accept: str) -> bool:
        return any(part.split(";", 1)[0].strip().lower() == "text/event-stream" for part in accept.split(","))

    @staticmethod
    def heartbeat_interval() -> float:
        return SSE_HEARTBEAT

    def start(self) -> str:
        # A first comment at once: daphne sends the response's head with its first
        # bytes, and a client waits for the head before anything else.
        return self.heartbeat()

    def next(self, payload: str, cursor: str | None) -> str:
        # JSON from json.dumps has no newline: one data line.
        return f"id: {cursor}\nevent: next\ndata: {payload}\n\n" if cursor else f"event: next\ndata: {payload}\n\n"

    def complete(self) -> str:
        return "event: complete\ndata:\n\n"

    def heartbeat(self) -> str:
        return ":\n\n"


class MultipartFraming:
    """Apollo's multipart subscriptions: each result is a part ``{"payload": ...}``,
    keep-alives are ``{}`` parts, the closing boundary ends the stream."""

    protocol = "multipart"
    boundary = "graphql"
    headers = {
        "Content-Type": 'multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"',
        "Cache-Control": "no-cache, no-transform",
        "X-Accel-Buffering": "no",
    }

    @staticmethod
    def accepts(accept: str) -> bool:
        for part in accept.split(","):
            media_type, params = parse_content_type(part.strip())
            if media_type == "multipart/mixed" and params.get("subscriptionspec", "").strip("'\"").startswith("1.0"):
                return True
        return False

    @staticmethod
    def heartbeat_interval() -> float:
        return MULTIPART_HEARTBEAT

    # Apollo's client hands on a part when the boundary that follows it arrives, so
    # each part is written with the boundary after it, and the stream opens with one.
    def _part(self, body: str) -> str:
        return f"\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{body}\r\n--{self.boundary}"

    def start(self) -> str:
        return f"\r\n--{self.boundary}" + self.heartbeat()

    def next(self, payload: str, cursor: str | None) -> str:
        return self._part(f'{{"payload":{payload}}}')

    def complete(self) -> str:
        return "--\r\n"  # after the last part's boundary: the closing delimiter

    def heartbeat(self) -> str:
        return self._part("{}")


def framing_for(request: HttpRequest) -> SSEFraming | MultipartFraming | None:
    """The streaming framing a GET or POST's ``Accept`` asks for, or None (a plain request)."""
    if request.method not in ("GET", "POST"):
        return None
    accept = request.headers.get("Accept") or ""
    if SSEFraming.accepts(accept):
        return SSEFraming()
    if MultipartFraming.accepts(accept):
        return MultipartFraming()
    return None


def with_send_in_scope(app):
    """ASGI middleware keeping each HTTP request's ``send`` in its scope: under
    daphne it leads to the connection, whose unsent bytes tell a slow reader. It
    also turns Nagle's algorithm off for the connection (daphne_adapter)."""

    async def application(scope, receive, send):
        if scope.get("type") == "http":
            scope = {**scope, SEND_SCOPE_KEY: send}
            daphne_adapter.send_without_delay(send)
        return await app(scope, receive, send)

    return application


def _daphne_request(request: HttpRequest):
    """daphne's Twisted request object behind this request (its ``send`` is
    ``partial(server.handle_reply, protocol)``), or None elsewhere."""
    return daphne_adapter.connection(getattr(request, "scope", {}).get(SEND_SCOPE_KEY))


class HttpSubscription:
    """One streamed HTTP operation: the engine's ``Sink`` for its subscription and
    the ordered frames of its response."""

    def __init__(self, view, request: HttpRequest, framing):
        self.view = view
        self.request = request
        self.framing = framing
        self.last_event_id = request.headers.get("Last-Event-ID") if isinstance(framing, SSEFraming) else None
        self._frames: deque[str] = deque()
        self._wake = asyncio.Event()
        self._ended = False  # no frame after this one
        # The operation is under way (its resolver runs, or a first result came): the response can start.
        self.started = asyncio.Event()
        self.request_error = None  # the first result, when the operation was refused before it ran
        self._cursor: str | None = None  # of the next result out of Strawberry's pipeline
        self.signature: tuple | None = None
        self.executor = None
        self.context = None
        self._daphne = _daphne_request(request)
        self._revocation = None

    # --- the resolver's side ------------------------------------------------------

    @classmethod
    def for_operation(cls, info: Info) -> HttpSubscription | None:
        """The HTTP stream of the subscription being resolved (call it from its
        resolver), ready to be its sink; None over WebSocket or plain HTTP."""
        stream = getattr(info.context, "http_stream", None)
        if stream is None:
            return None
        stream.executor = subscription_executor.get()
        raw = strawberry_adapter.resolve_info(info)
        stream.signature = subscription_signature(
            raw.schema, raw.operation, raw.fragments, raw.variable_values, info.context.user
        )
        stream.context = contextvars.copy_context()
        stream.started.set()
        return stream

    def resume_after(self, after: str | None) -> str | None:
        """``roomEvents``' ``after``: a reconnecting SSE client's ``Last-Event-ID``
        (the cursor of the last event it received) wins over the request's own."""
        return self.last_event_id or after

    # --- the engine's Sink ---------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> bool:
        """Write ``delivery``'s frame; False (nothing written) when Strawberry's
        pipeline must take it: an ephemeral event, a result with errors."""
        if self._ended:
            return True  # the stream is over: nobody reads it any more
        payload = None
        if delivery.seq is not None and self.signature is not None and self.executor is not None:
            payload = await shared_event_payload(
                delivery, self.signature, self.executor, self.context, self.view.encode_json
            )
        if payload is None:
            self._cursor = delivery.cursor  # the cursor of what the pipeline yields next
            return False
        self.write(self.framing.next(payload, delivery.cursor))
        return True

    async def close(self, code: int, reason: str) -> None:
        """End the stream: revoked (4403) with an ``UNAUTHENTICATED`` error and
        ``complete`` (retrying cannot help); a service failure (1013) with a
        ``SERVICE_UNAVAILABLE`` error and no ``complete``, so that the client
        reconnects and resumes; too slow (4429) at once."""
        if self._ended:
            return
        if code == 4403:
            self.write(self.framing.next(self.view.encode_json({"errors": [REVOKED_ERROR]}), None))
            self.write(self.framing.complete())
        elif code == 1013:
            self.write(self.framing.next(self.view.encode_json({"errors": [UNAVAILABLE_ERROR]}), None))
        self._end()

    # --- frames --------------------------------------------------------------------

    def write(self, frame: str) -> None:
        if self._ended:
            return
        self._frames.append(frame)
        self._wake.set()
        self._cut_off_if_slow()

    def _cut_off_if_slow(self) -> bool:
        """End the stream of a client that does not read: more than MAX_QUEUED_FRAMES
        waiting here, or more than WS_MAX_BUFFERED_BYTES that daphne could not send
        (its writes never wait for the peer, so nothing else bounds them)."""
        backlog = unsent_bytes(self._daphne) if self._daphne is not None else 0
        if len(self._frames) <= MAX_QUEUED_FRAMES and backlog <= settings.WS_MAX_BUFFERED_BYTES:
            return False
        logger.warning(
            "%s client not reading: %d frames queued, %d bytes unsent; ending the stream",
            self.framing.protocol,
            len(self._frames),
            backlog,
        )
        metrics.slow_client_cut_off(self.framing.protocol)
        self._frames.clear()
        self._end()
        return True

    async def _close_for_restart(self) -> None:
        """The process drains: end the stream (no ``complete``), and the client
        reconnects, to another process, resuming from its last event's id."""
        self._end()

    def _end(self) -> None:
        self._ended = True
        self._wake.set()

    async def frames(self, pump: asyncio.Task) -> AsyncIterator[str]:
        """The response body: frames as they come, keep-alives when nothing does.
        Ends with the stream; a client that goes away cancels it here."""
        # Open from here (a response never iterated never opened): counted, and
        # closed by the process's drain so that the client reconnects elsewhere.
        lifecycle.register(self, self._close_for_restart)
        metrics.connection_opened(self.framing.protocol)
        metrics.subscription_opened(self.framing.protocol)
        try:
            yield self.framing.start()
            while True:
                if not self._frames and not self._ended:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.framing.heartbeat_interval())
                    except TimeoutError:
                        if not self._cut_off_if_slow():
                            yield self.framing.heartbeat()
                        continue
                if self._frames and not self._cut_off_if_slow():
                    chunk = "".join(self._frames)
                    self._frames.clear()
                    yield chunk
                if self._ended and not self._frames:
                    return
        finally:
            lifecycle.unregister(self)
            metrics.subscription_closed(self.framing.protocol)
            metrics.connection_closed(self.framing.protocol)
            self._ended = True
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            await self._unwatch_revocation()

    # --- revocation ----------------------------------------------------------------

    async def watch_revocation(self, user) -> bool:
        """Watch for the user's revocation, then check that the token is still good:
        a revocation committed in between is seen by one or the other."""
        process = realtime.hub()
        await process.watch_user(user.pk, self)
        self._revocation = (process, user.pk)
        return await database_sync_to_async(tokens.still_signed_in)(user)

    async def _unwatch_revocation(self) -> None:
        revocation, self._revocation = self._revocation, None
        if revocation is not None:
            process, user_id = revocation
            await process.unwatch_user(user_id, self)

    async def revoked(self) -> None:
        await self.close(4403, "Token revoked")

    async def layer_failed(self) -> None:
        await self.close(1013, "Real-time service unavailable")

    # --- Strawberry's pipeline -----------------------------------------------------

    async def pump(self, results: AsyncIterator) -> None:
        """Write what Strawberry's pipeline yields (errors, events the sink declined,
        a query's single result), then ``complete``; a request error as the first
        result is kept for the view instead (``request_error``)."""
        try:
            async for result in results:
                if not self.started.is_set():
                    if is_request_error(result):
                        self.request_error = result
                        return
                    self.started.set()
                await self.write_result(result)
            self.write(self.framing.complete())
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("HTTP subscription failed")
            error = {"message": "Unexpected error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
            self.write(self.framing.next(self.view.encode_json({"errors": [error]}), None))
            self.write(self.framing.complete())
        finally:
            self.started.set()
            self._end()
            with contextlib.suppress(Exception):
                await results.aclose()
            # The operation's database work ran in the process's worker thread (this
            # task's context has no request executor): close what it left open.
            with contextlib.suppress(Exception):
                await database_sync_to_async(close_old_connections)()

    async def write_result(self, result) -> None:
        cursor, self._cursor = self._cursor, None
        response = await self.view.process_result(self.request, result)
        self.write(self.framing.next(self.view.encode_json(response), cursor))


def is_request_error(result) -> bool:
    """An operation refused before it ran (parse, validation, cost): what
    graphql-transport-ws answers with ``error`` instead of ``next``."""
    return isinstance(result, PreExecutionError)


async def serve(view, request: HttpRequest, request_data: GraphQLRequestData, context, root_value, framing):
    """Run ``request_data``'s operation and answer with its stream (or, for a
    request error, 400 with the GraphQL errors)."""
    if lifecycle.draining():  # as for a WebSocket: reconnect, to another process
        error = {"message": "Server restarting; reconnect.", "extensions": {"code": "SERVICE_UNAVAILABLE"}}
        return JsonResponse({"errors": [error]}, status=503, headers={"Retry-After": "1"})
    stream = HttpSubscription(view, request, framing)
    context.http_stream = stream
    user = context.user
    if getattr(user, "is_authenticated", False) and not await stream.watch_revocation(user):
        # Revoked since the token was checked: what a revoked token gets anywhere.
        context.user, context.auth_error = AnonymousUser(), Unauthenticated("Token has been revoked.")

    allowed = OperationType.from_http(request.method)
    if not view.allow_queries_via_get and request.method == "GET":
        allowed -= {OperationType.QUERY}
    if isinstance(framing, MultipartFraming):
        allowed &= {OperationType.SUBSCRIPTION}
    results = await view.schema.stream(
        request_data.query,
        variable_values=request_data.variables,
        context_value=context,
        root_value=root_value,
        operation_name=request_data.operation_name,
        operation_extensions=request_data.extensions,
        allowed_operation_types=allowed,
    )

    # Everything of the operation runs in the pump's task, in a context of its own:
    # the request's (an executor of Django's that ends with the view) must not
    # outlive the view. The response starts once the resolver has taken this
    # stream (a valid subscription, waiting for events) or the pipeline has given
    # its first result, which may be a request error (400, no stream).
    pump = asyncio.get_running_loop().create_task(stream.pump(results), context=contextvars.Context())
    try:
        await stream.started.wait()
    except BaseException:
        pump.cancel()
        await stream._unwatch_revocation()
        raise
    if stream.request_error is not None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        await stream._unwatch_revocation()
        return await view.request_error_response(request, request_data, stream.request_error)
    view.remember_document(request_data)
    response = StreamingHttpResponse(stream.frames(pump), status=200)
    for name, value in framing.headers.items():
        response[name] = value
    return response
