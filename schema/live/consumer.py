"""WebSocket transport: Strawberry's Channels consumer (graphql-transport-ws and
the legacy graphql-ws), authenticated by JWT at ``connection_init``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError
from django.http.request import validate_host
from redis.exceptions import RedisError
from strawberry.channels import GraphQLWSConsumer
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

from chat import lifecycle, metrics, realtime, request_id, tokens
from chat.errors import ChatError, ServiceUnavailable
from chat.realtime import LightQueue
from chat.services import presence
from schema.context import ChatContext
from schema.errors import as_chat_error
from schema.live import autobahn_adapter, channels_adapter, daphne_adapter, strawberry_adapter, twisted_adapter
from schema.live.twisted_adapter import unsent_bytes

logger = logging.getLogger(__name__)

autobahn_adapter.plain_frame_debug_arguments()  # see there: per-frame cost under daphne
twisted_adapter.write_through()  # see there: a write per frame, without the reactor's round

# graphql-transport-ws' "Forbidden" close code. Strawberry closes a rejected
# legacy graphql-ws connection with 1011, which daphne refuses to send (the
# socket would stay open); we close both protocols with 4403.
FORBIDDEN_CLOSE_CODE = 4403
# A client that does not read what we send (graphql-transport-ws' "too many requests").
SLOW_CLIENT_CLOSE_CODE = 4429
# graphql-transport-ws' "Bad request": a frame the protocol handler could not handle.
INVALID_MESSAGE_CLOSE_CODE = 4400
# RFC 6455 "Try Again Later": a backing service (database, channel layer) failed.
TRY_AGAIN_LATER_CLOSE_CODE = 1013
# RFC 6455 "Service Restart": this process is draining; reconnect (elsewhere) and resume.
SERVICE_RESTART_CLOSE_CODE = 1012

# Strawberry's own origin list, empty: see GraphQLConsumer.is_websocket_origin_allowed.
NO_ALLOWED_ORIGINS: frozenset[str] = frozenset()

# A socket holds its user for as long as it is open: the fields that live delivery,
# authorization and presence do not read are loaded if an operation reads them.
SOCKET_USER_DEFERRED = ("password", "first_name", "last_name", "email", "bio", "date_joined", "last_login")


@contextlib.asynccontextmanager
async def service_failures_close_the_socket(info) -> AsyncIterator[None]:
    """Around a subscription's stream: a backing service that fails under it (the
    event log to read while Postgres is down, the channel layer) closes the socket
    with 1013, as a failing channel layer does, and the client reconnects and
    resumes from its cursor. An error result would end the subscription for good:
    graphql-ws clients resubscribe after a close, not after an error."""
    try:
        yield
    except Exception as error:
        socket = getattr(info.context, "ws", None)
        if not isinstance(socket, GraphQLConsumer) or not isinstance(as_chat_error(error), ServiceUnavailable):
            raise
        logger.warning("subscription ended by a service failure; closing the socket with 1013", exc_info=True)
        await socket.try_again_later()


class GraphQLConsumer(GraphQLWSConsumer):
    # Layer messages reach the process's hub (chat.realtime.Hub), never a socket: an
    # alias that names no layer stops Channels from giving each socket a channel of
    # its own, whose queue and reader task would cost memory on every socket.
    channel_layer_alias = "no channel per socket"

    # Strawberry's protocol handlers, registering themselves on the consumer for the
    # subscription fast path (schema/live/fast_path.py).
    graphql_transport_ws_handler_class = strawberry_adapter.TransportWSHandler
    graphql_ws_handler_class = strawberry_adapter.LegacyWSHandler

    @property
    def fast_path_enabled(self) -> bool:
        return settings.GRAPHQL_SHARED_EVENT_RESULTS

    def _handshake_token(self) -> str | None:
        """The token of the handshake: ``Authorization`` header, then ``?token=``."""
        headers = dict(self.scope.get("headers") or [])
        header = headers.get(b"authorization")
        if header:
            return tokens.token_from_authorization(header.decode("latin1"))
        query = parse_qs((self.scope.get("query_string") or b"").decode("latin1"))
        return (query.get("token") or [None])[0]

    def _init_token(self, params: dict | None) -> str | None:
        """The token of the ``connection_init`` payload: ``authToken`` or ``Authorization``."""
        if not isinstance(params, dict):
            return None
        if params.get("authToken"):
            return str(params["authToken"])
        header = params.get("Authorization") or params.get("authorization")
        return tokens.token_from_authorization(str(header)) if header else None

    def is_websocket_origin_allowed(self, request, origin: str) -> bool:
        """Cross-origin browser sockets: allowed for the CORS origins and for pages
        served from one of ``ALLOWED_HOSTS`` (any port), refused otherwise."""
        if origin in settings.CORS_ALLOWED_ORIGINS:
            return True
        hostname = urlsplit(origin).hostname
        return bool(hostname) and validate_host(hostname, settings.ALLOWED_HOSTS)

    async def get_context(self, request, response) -> ChatContext:
        return ChatContext(request=request, response=response, ws=self, user=self.scope.get("user") or AnonymousUser())

    async def on_ws_connect(self, context: ChatContext):
        if self._identified:
            # graphql-transport-ws refuses a second connection_init itself (4429); the
            # legacy protocol would run this again and let a socket change who it is.
            raise ConnectionRejectionError({"message": "Too many initialisation requests"})
        try:
            token = self._init_token(context.connection_params) or self._handshake_token()
            user = AnonymousUser()
            if token:
                payload = tokens.decode_access_token(token)
                await self._watch_revocation(tokens.user_id_of(payload))
                user = await sync_to_async(tokens.user_for_payload)(payload, SOCKET_USER_DEFERRED)
        except ChatError as error:
            raise ConnectionRejectionError({"message": error.message, "code": error.code}) from None
        self.scope["user"] = user
        context.fix_socket_identity(user)
        if isinstance(context.connection_params, dict):
            # The token has done its work: the socket does not keep it for its lifetime.
            context.connection_params = {
                k: v
                for k, v in context.connection_params.items()
                if k not in ("authToken", "Authorization", "authorization")
            }
        self._identified = True
        if user.is_authenticated:
            await self._presence_start(user)
        return {"user": str(user.pk) if user.is_authenticated else None}

    # --- revocation: "log out everywhere", password change and account deletion close the socket

    async def refuse_if_signed_out(self) -> bool:
        """Before each new operation: close with 4403 (and say so) if the socket's
        user was deactivated or revoked, whether or not the revocation message arrived."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return False
        if await sync_to_async(tokens.still_signed_in)(user):
            return False
        await self.close(code=FORBIDDEN_CLOSE_CODE, reason="Token revoked")
        return True

    async def _watch_revocation(self, user_id: int) -> None:
        """Watch for the user's revocation *before* the database check of
        ``token_version``: a revocation committed in between is then either seen by
        the check or delivered to this socket, never lost (chat.realtime.Hub)."""
        process = realtime.hub()
        await process.watch_user(user_id, self)
        self._revocation = (process, user_id)

    async def _unwatch_revocation(self) -> None:
        revocation, self._revocation = self._revocation, None
        if revocation is not None:
            process, user_id = revocation
            await process.unwatch_user(user_id, self)

    async def revoked(self) -> None:
        await self.close(code=FORBIDDEN_CLOSE_CODE, reason="Token revoked")

    async def layer_failed(self) -> None:
        if not self._socket_closed:
            await self.close(code=TRY_AGAIN_LATER_CLOSE_CODE, reason="Real-time service unavailable; reconnect")

    # --- presence and disconnect (realtime) ---------------------------------------

    async def _presence_start(self, user) -> None:
        """Count this socket for the user's presence and keep it counted while open
        (the process's heartbeat, chat/services/presence.py)."""
        if self._presence_user is not None:
            return
        self._presence_user = user
        await database_sync_to_async(presence.connect_socket)(user, self.socket_id)
        presence.heartbeats.register(self.socket_id, user)

    async def disconnect(self, code) -> None:
        try:
            # The frame being handled first (the task stops after it), then the operations.
            running = strawberry_adapter.running_task(self)
            if running is not None:
                with contextlib.suppress(Exception):
                    await running
            await self._end_handler()
        finally:
            await self._unwatch_revocation()
            await self._realtime_cleanup()

    async def _realtime_cleanup(self) -> None:
        """End this socket's presence (its subscriptions left their groups as they stopped)."""
        user = self._presence_user
        if user is not None:
            self._presence_user = None
            presence.heartbeats.unregister(self.socket_id)
            try:
                await database_sync_to_async(presence.disconnect_socket)(user, self.socket_id)
            except Exception:
                logger.warning("presence disconnect failed", exc_info=True)

    async def close(self, code=None, reason=None):
        self._close_sent = True
        if code == 1011:
            code = FORBIDDEN_CLOSE_CODE
        protocol = daphne_adapter.daphne_protocol(channels_adapter.server_send(self))
        if protocol is not None and code is not None and code != 1000 and not 3000 <= code <= 4999:
            autobahn_adapter.send_close_frame(protocol, code, reason or "")
            return
        await super().close(code=code, reason=reason)

    # --- limits (hardening): settings WS_* in backend/settings.py ----------------------
    #
    # connection_init timeout and subscriptions per connection are Strawberry's own
    # (graphql-transport-ws closes 4408 / answers "Subscription limit reached"); the
    # legacy graphql-ws protocol has no init timeout in Strawberry, so we add one.
    # Frames bigger than WS_MAX_MESSAGE_BYTES close with 1009 (under daphne autobahn
    # refuses them from the frame header, before the payload is read).
    # A client that stops reading is cut off (4429) once daphne holds more than
    # WS_MAX_BUFFERED_BYTES of unsent frames for it: daphne's ASGI send never waits
    # for the peer, so without this the server would buffer without bound.

    # --- faults: a channel layer (Redis) or database that fails ends the socket with
    # 1013 "try again later" instead of leaving it open and deaf; the client reconnects
    # and resumes from its cursor (the event log has everything it missed).

    # --- inbound frames: Strawberry's protocol handler would read them in a task of
    # its own, waiting on every socket for the next frame. Here ``receive`` queues a
    # frame and, unless one runs already, starts a task that hands the waiting frames
    # to the handler in order and ends when none is left (``handle_frames``): an idle
    # socket has no task of its own. The queue holds at most WS_MAX_QUEUED_MESSAGES
    # frames (more closes 4429).
    #
    # --- malformed frames: a frame the handler cannot handle (JSON nested past the
    # recursion limit, an operation id that is a list, a legacy ``start`` without
    # payload) ends the handler and closes the socket with 4400; a backing service
    # failing under it (the token lookup at connection_init) with 1013. A socket
    # whose handler ended closes, and its later frames are ignored.

    async def run(self, *args, **kwargs):
        """Strawberry's view for this socket: the handshake, the protocol handler's
        start, and the frames that arrived meanwhile."""
        try:
            return await super().run(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - logged there, with its traceback
            await self._handler_failed(error)
        finally:
            if self._ws_handler is None:  # refused (origin, subprotocol), or failed before its handler
                self._handler_ended = True
                await self._close_if_open(INVALID_MESSAGE_CLOSE_CODE, "Invalid message")
        return None

    async def handle_frames(self) -> None:
        """Hand the waiting frames to the protocol handler, in order, until none is
        left (or the handler or the socket ends)."""
        frames = strawberry_adapter.inbound_frames(self)
        try:
            while not frames.empty() and not self._handler_ended and not self._socket_closed:
                frame = await frames.get()
                if not await strawberry_adapter.handle_frame(self._ws_handler, frame):
                    await self._end_handler()
        except Exception as error:  # noqa: BLE001 - logged there, with its traceback
            await self._handler_failed(error)
        finally:
            # No await since the queue was seen empty: receive starts the next.
            strawberry_adapter.set_running_task(self, None)

    async def _handler_failed(self, error: Exception) -> None:
        if isinstance(error, (DatabaseError, RedisError, OSError)):
            if isinstance(error, RedisError):
                metrics.channel_layer_failed("socket")
            # e.g. the token lookup or a group_add at connection_init while a service is down
            logger.warning("websocket ended by a service failure; closing with 1013", exc_info=error)
            await self._end_handler(TRY_AGAIN_LATER_CLOSE_CODE, "Service unavailable; try again")
        else:
            logger.warning("websocket message handling failed; closing with 4400", exc_info=error)
            await self._end_handler()

    async def _end_handler(self, code: int = INVALID_MESSAGE_CLOSE_CODE, reason: str = "Invalid message") -> None:
        """Stop the handler's operations, as the end of its read loop would, and close."""
        ended, self._handler_ended = self._handler_ended, True
        if not ended and self._ws_handler is not None:
            await strawberry_adapter.end_handler(self._ws_handler)
        await self._close_if_open(code, reason)

    async def try_again_later(self, wait: bool = True) -> None:
        """Close with 1013 from an operation that failed; with ``wait``, it waits here
        (answering nothing) until the disconnect ends it with the socket's other
        operations."""
        if self._socket_closed:
            return  # gone already: nothing would cancel the wait
        await self._close_if_open(TRY_AGAIN_LATER_CLOSE_CODE, "Service unavailable; reconnect")
        if wait:
            await asyncio.Event().wait()

    async def _close_if_open(self, code: int, reason: str) -> None:
        if not self._socket_closed and not self._close_sent:
            await self.close(code=code, reason=reason)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("connection_init_wait_timeout", timedelta(seconds=settings.WS_CONNECTION_INIT_TIMEOUT))
        kwargs.setdefault("max_subscriptions_per_connection", settings.WS_MAX_SUBSCRIPTIONS)
        super().__init__(*args, **kwargs)
        # Strawberry builds a frozenset of the allowed origins per socket; ours are
        # decided by is_websocket_origin_allowed, so every socket shares one.
        self.allowed_origins = NO_ALLOWED_ORIGINS
        strawberry_adapter.no_channel_listening(self)  # no channel per socket: nothing to listen on
        self._cut_off = False
        self._identified = False  # connection_init accepted: the socket's user is fixed
        self._close_sent = False
        self._handler_ended = False
        self._socket_closed = False
        self._daphne_protocol = None
        # Set later (at the handshake, by the protocol handler), named here so that every
        # socket's attributes come in one order: the instance dict then stays shared.
        self.request_id: str | None = None
        self._ws_handler = None
        # The legacy protocol's connection_init timeout (running until the init arrives).
        self._init_timer: asyncio.Task | None = None
        self._revocation = None
        # The instance dict stays small (shared keys) only up to 29 attributes,
        # Channels' and Strawberry's included: add one only with one taken away.
        self._presence_user = None
        # This socket in the presence counts (chat/services/presence.py), unique across processes.
        self.socket_id = uuid.uuid4().hex
        self.graphql_protocol: str | None = None  # the subprotocol chosen at the handshake
        # Strawberry's asyncio.Queue, lighter (idle memory)
        strawberry_adapter.set_message_queue(self, LightQueue())

    async def websocket_connect(self, message) -> None:
        # The connection's id for its log lines and errors (the handshake's sane
        # X-Request-ID, else a new one): bound first, so that the protocol handler's
        # and the operations' tasks, started later from this one, inherit it.
        headers = dict(self.scope.get("headers") or [])
        self.request_id = request_id.accept(headers.get(b"x-request-id", b"").decode("latin1"))
        request_id.bind(self.request_id)
        self._daphne_protocol = daphne_adapter.daphne_protocol(channels_adapter.server_send(self))
        if self._daphne_protocol is not None:
            autobahn_adapter.limit_incoming_frames(self._daphne_protocol, settings.WS_MAX_MESSAGE_BYTES)
        offered = self.scope.get("subprotocols") or []
        chosen = next((p for p in offered if p in self.protocols), None)
        self.graphql_protocol = chosen
        if chosen == GRAPHQL_WS_PROTOCOL:
            self._init_timer = asyncio.create_task(self._close_unless_initialised())
        await super().websocket_connect(message)
        if self._socket_closed or self._close_sent:
            return
        # Open: the process's drain (chat/lifecycle.py) closes it for a restart.
        lifecycle.register(self, self._close_for_restart)
        metrics.connection_opened(chosen)
        if lifecycle.draining():  # the drain began during the handshake
            await self._close_for_restart()

    async def _close_for_restart(self) -> None:
        await self._close_if_open(SERVICE_RESTART_CLOSE_CODE, "Server restarting; reconnect")

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.connection_init_wait_timeout.total_seconds())
        if not self._socket_closed:  # connection_init would have cancelled this
            await self.close(code=4408, reason="Connection initialisation timeout")

    async def websocket_disconnect(self, message) -> None:
        self._socket_closed = True
        if lifecycle.unregister(self):  # registered and counted when it opened
            metrics.connection_closed(self.graphql_protocol)
        if self._init_timer is not None:
            self._init_timer.cancel()
        await super().websocket_disconnect(message)

    async def websocket_receive(self, message) -> None:
        try:
            await super().websocket_receive(message)
        finally:
            # Channels' dispatch loop holds the last message it dispatched until the
            # next one arrives: on an idle socket, its subscribe frame for good.
            message.clear()
            autobahn_adapter.forget_frame_mask(self._daphne_protocol)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self._cut_off or self._handler_ended:
            return  # closing: nobody reads frames any more
        size = len(text_data.encode()) if text_data else len(bytes_data or b"")
        if size > settings.WS_MAX_MESSAGE_BYTES:
            self._cut_off = True
            logger.warning("websocket message of %d bytes refused (limit %d)", size, settings.WS_MAX_MESSAGE_BYTES)
            await self.close(code=1009, reason="Message too big")
            return
        frames = strawberry_adapter.inbound_frames(self)
        if frames.qsize() >= settings.WS_MAX_QUEUED_MESSAGES:
            self._cut_off = True
            logger.warning("websocket inbound queue full (%d frames), closing 4429", settings.WS_MAX_QUEUED_MESSAGES)
            metrics.slow_client_cut_off(self.graphql_protocol)
            await self.close(code=SLOW_CLIENT_CLOSE_CODE, reason="Too many messages queued")
            return
        if self._init_timer is not None and text_data:
            with contextlib.suppress(ValueError, AttributeError, RecursionError):
                if json.loads(text_data).get("type") == "connection_init":
                    self._init_timer.cancel()
                    self._init_timer = None
        frames.put_nowait(text_data or None)  # None: not a text frame
        if strawberry_adapter.running_task(self) is None:  # else that task takes it (the handshake's, or handle_frames)
            strawberry_adapter.set_running_task(self, asyncio.create_task(self.handle_frames()))

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        if self._cut_off:
            return  # closing: nothing more for a client that stopped reading
        protocol = self._daphne_protocol
        # Under daphne a text frame goes straight to the connection (see autobahn_adapter.send_text).
        written = False
        if text_data and not close and protocol is not None:
            written = autobahn_adapter.send_text(protocol, text_data.encode())
        if not written:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        if protocol is None:
            return
        backlog = unsent_bytes(protocol)
        if backlog and backlog > settings.WS_MAX_BUFFERED_BYTES:  # mostly 0: no settings lookup per frame
            self._cut_off = True
            logger.warning(
                "websocket client not reading: %d bytes unsent (limit %d), closing 4429",
                backlog,
                settings.WS_MAX_BUFFERED_BYTES,
            )
            # The close frame queues behind the unread data. A client that reads again
            # within WS_SLOW_CLIENT_CLOSE_SECONDS gets the frames queued before it and
            # 4429; otherwise the TCP connection is aborted, freeing the buffer.
            autobahn_adapter.close_after(protocol, settings.WS_SLOW_CLIENT_CLOSE_SECONDS)
            metrics.slow_client_cut_off(self.graphql_protocol)
            await super().close(code=SLOW_CLIENT_CLOSE_CODE, reason="Not reading: too many unsent messages")
