"""WebSocket transport: Strawberry's Channels consumer (graphql-transport-ws and
the legacy graphql-ws), authenticated by JWT at ``connection_init``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qs, urlsplit

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host
from strawberry.channels import GraphQLWSConsumer
from strawberry.exceptions import ConnectionRejectionError

from chat import tokens
from chat.errors import ChatError
from chat.services import presence
from schema.context import ChatContext

logger = logging.getLogger(__name__)

# graphql-transport-ws' "Forbidden" close code. Strawberry closes a rejected
# legacy graphql-ws connection with 1011, which daphne refuses to send (the
# socket would stay open); we close both protocols with 4403.
FORBIDDEN_CLOSE_CODE = 4403


class GraphQLConsumer(GraphQLWSConsumer):
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
        try:
            token = self._init_token(context.connection_params) or self._handshake_token()
            user = await sync_to_async(tokens.user_for_access_token)(token) if token else AnonymousUser()
        except ChatError as error:
            raise ConnectionRejectionError({"message": error.message, "code": error.code}) from None
        self.scope["user"] = user
        context.user = user
        if user.is_authenticated:
            await self._presence_start(user)
        return {"user": str(user.pk) if user.is_authenticated else None}

    # --- presence and disconnect (realtime) ---------------------------------------

    async def _presence_start(self, user) -> None:
        """Count this socket for the user's presence and keep it counted while open."""
        if getattr(self, "_presence_user", None) is not None:
            return
        self._presence_user = user
        await database_sync_to_async(presence.connect_socket)(user, self.channel_name)
        self._presence_task = asyncio.create_task(self._presence_heartbeat(user))

    async def _presence_heartbeat(self, user) -> None:
        while True:
            await asyncio.sleep(presence.heartbeat_interval())
            try:
                await database_sync_to_async(presence.heartbeat_socket)(user, self.channel_name)
            except Exception:  # a Redis or database hiccup must not end the socket
                logger.warning("presence heartbeat failed", exc_info=True)

    async def disconnect(self, code) -> None:
        try:
            await super().disconnect(code)
        finally:
            await self._realtime_cleanup()

    async def _realtime_cleanup(self) -> None:
        """Leave every group still joined (a subscription cancelled mid-cleanup
        must not leave the socket's channel behind) and end this socket's presence."""
        async with self._group_lock:
            for group in list(self._group_refs):
                with contextlib.suppress(Exception):
                    await self.channel_layer.group_discard(group, self.channel_name)
            self._group_refs.clear()
        task = getattr(self, "_presence_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        user = getattr(self, "_presence_user", None)
        if user is not None:
            self._presence_user = None
            try:
                await database_sync_to_async(presence.disconnect_socket)(user, self.channel_name)
            except Exception:
                logger.warning("presence disconnect failed", exc_info=True)

    async def close(self, code=None, reason=None):
        if code == 1011:
            code = FORBIDDEN_CLOSE_CODE
        await super().close(code=code, reason=reason)
