"""Test clients that speak to the app the way real clients do."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.pubsub import RedisPubSubChannelLayer

from chat import realtime, tokens


def without_request_id(extensions: dict) -> dict:
    """An error's ``extensions`` without its ``requestId``, which must be there: the
    id of the request (or WebSocket connection) the error belongs to."""
    assert re.fullmatch(r"[0-9a-f]{32}", extensions.get("requestId") or ""), extensions
    return {key: value for key, value in extensions.items() if key != "requestId"}


def token_for(user) -> str:
    return tokens.create_access_token(user)[0]


class GraphQLClient:
    """GraphQL over HTTP: POST /graphql/ with a JSON body and an optional JWT."""

    def __init__(self, client):
        self.client = client

    def _request(self, query: str, variables: dict | None, user, token: str | None, headers: dict | None):
        if user is not None and token is None:
            token = token_for(user)
        extra = dict(headers or {})
        if token is not None:
            extra.setdefault("Authorization", f"JWT {token}")
        body = json.dumps({"query": query, "variables": variables or {}})
        return self.client.post("/graphql/", body, content_type="application/json", headers=extra)

    def __call__(self, query: str, variables: dict | None = None, user=None, token=None, headers=None) -> Any:
        response = self._request(query, variables, user, token, headers)
        if hasattr(response, "__await__"):
            return self._finish(response)
        return self._decode(response)

    async def _finish(self, response):
        return self._decode(await response)

    @staticmethod
    def _decode(response) -> dict:
        assert response.status_code < 500, response.content
        return response.json()


async def async_token_for(user) -> str:
    return await sync_to_async(token_for)(user)


class WSClient:
    """GraphQL over WebSocket through ``backend.asgi.application``.

    Speaks ``graphql-transport-ws`` or the legacy ``graphql-ws``; ``connect()``
    sends ``connection_init`` with the token as ``authToken`` unless told otherwise.
    """

    def __init__(
        self,
        token: str | None = None,
        protocol: str = "graphql-transport-ws",
        path: str = "/graphql/",
        headers: list[tuple[bytes, bytes]] | None = None,
    ):
        from backend.asgi import application

        self.token = token
        self.protocol = protocol
        self.legacy = protocol == "graphql-ws"
        hdrs = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), *(headers or [])]
        self.communicator = WebsocketCommunicator(application, path, subprotocols=[protocol], headers=hdrs)
        self.ids = itertools.count(1)
        self.connected = False

    async def connect(self, payload: dict | None = None, init: bool = True) -> dict | None:
        connected, _ = await self.communicator.connect()
        assert connected
        self.connected = True
        if not init:
            return None
        if payload is None:
            payload = {"authToken": self.token} if self.token else {}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()

    async def send(self, message: dict) -> None:
        await self.communicator.send_json_to(message)

    async def receive(self, timeout: float = 5) -> dict:
        while True:
            message = await self.communicator.receive_json_from(timeout=timeout)
            if message.get("type") not in {"ka", "ping", "pong"}:
                return message

    async def receive_close(self, timeout: float = 5) -> int | None:
        output = await self.communicator.receive_output(timeout=timeout)
        while output["type"] == "websocket.send":
            output = await self.communicator.receive_output(timeout=timeout)
        assert output["type"] == "websocket.close", output
        # Like daphne after a close, tell the app the socket is gone so the consumer
        # (and its pending channel-layer read) ends instead of outliving the test.
        await self.communicator.disconnect(code=output.get("code") or 1000)
        self.connected = False
        return output.get("code")

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def subscribe(self, query: str, variables: dict | None = None, op_id: str | None = None) -> str:
        op_id = op_id or str(next(self.ids))
        kind = "start" if self.legacy else "subscribe"
        await self.send({"type": kind, "id": op_id, "payload": {"query": query, "variables": variables or {}}})
        return op_id

    async def next(self, op_id: str | None = None, timeout: float = 5) -> dict:
        """The ``payload`` of the next data message (``next`` or legacy ``data``)."""
        message = await self.receive(timeout)
        assert message["type"] in {"next", "data"}, message
        if op_id is not None:
            assert message["id"] == op_id, message
        return message["payload"]

    async def execute(self, query: str, variables: dict | None = None) -> dict:
        """A query or mutation over the socket; returns its single result payload."""
        op_id = await self.subscribe(query, variables)
        payload = await self.next(op_id)
        done = await self.receive()
        assert done["type"] == "complete", done
        return payload

    async def stop(self, op_id: str) -> None:
        await self.send({"type": "stop" if self.legacy else "complete", "id": op_id})

    async def close(self) -> None:
        if self.connected:
            await self.communicator.disconnect()
            self.connected = False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await asyncio.shield(self.close())


def listening(group: str) -> int:
    """How many subscriptions of this process listen to ``group`` (the process
    itself is in the layer's group once for all of them: chat.realtime.Hub)."""
    return len(realtime.hub().listeners.get(group, ()))


def watched(user_id: int) -> int:
    """How many connections of this process a revocation of ``user_id`` would close."""
    return len(realtime.hub().signed_in.get(user_id, ()))


def _started(listener) -> bool:
    """A stream listens to its groups before it reads its positions (chat.realtime):
    it has started once the periodic checker watches it, after its start-up and
    what it replays. Other listeners (a socket's revocation) start as they join."""
    stream = getattr(listener, "__self__", None)
    return not isinstance(stream, realtime.RoomStream) or stream in realtime.checker.streams


async def until_listening(group: str, count: int = 1, settle: float = 0.15) -> None:
    """Wait until ``count`` subscriptions listen to ``group`` and have started: an
    event committed from then on is theirs. ``settle``: a moment more, for what
    the test's subscriptions do around their start (presence, replays sent)."""
    for _ in range(1000):
        if sum(map(_started, realtime.hub().listeners.get(group, ()))) >= count:
            await asyncio.sleep(settle)
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nobody started listening to {group}")


async def group_size(group: str) -> int:
    """How many channels are in a channel-layer group: in-memory, pub/sub (this
    process's subscription) or Redis sorted-set layer."""
    layer = get_channel_layer()
    if isinstance(layer, RedisPubSubChannelLayer):
        return len(layer.groups.get(f"{layer.prefix}__group__{group}", ()))
    if hasattr(layer, "groups"):  # in-memory layer
        return len(layer.groups.get(group, {}))
    async with layer.connection(layer.consistent_hash(group)) as connection:
        return await connection.zcard(layer._group_key(group))


SSE_ACCEPT = "text/event-stream"
MULTIPART_ACCEPT = 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json'


class HttpStreamClient:
    """A subscription streamed over HTTP through ``backend.asgi.application``, read as
    it arrives: GraphQL over SSE (``accept=SSE_ACCEPT``) or Apollo's multipart
    subscriptions (``MULTIPART_ACCEPT``). ``message()`` returns the next result
    (``{"id", "event", "data"}`` for SSE, ``{"payload": ...}`` for multipart);
    keep-alives are counted in ``heartbeats``."""

    def __init__(
        self,
        query: str,
        variables: dict | None = None,
        token: str | None = None,
        accept: str = SSE_ACCEPT,
        headers: dict[str, str] | None = None,
        method: str = "POST",
    ):
        from urllib.parse import urlencode

        from asgiref.testing import ApplicationCommunicator

        from backend.asgi import application

        self.multipart = accept != SSE_ACCEPT
        operation = {"query": query, "variables": json.dumps(variables or {})}
        # GET: the operation in the query string, as a browser's EventSource sends it.
        query_string = urlencode(operation).encode() if method == "GET" else b""
        self.request_body = b"" if method == "GET" else json.dumps({**operation, "variables": variables or {}}).encode()
        hdrs = {"host": "127.0.0.1", "content-type": "application/json", "accept": accept, **(headers or {})}
        if token:
            hdrs["authorization"] = f"JWT {token}"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": "/graphql/",
            "raw_path": b"/graphql/",
            "query_string": query_string,
            "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in hdrs.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        self.communicator = ApplicationCommunicator(application, scope)
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.buffer = ""
        self.heartbeats = 0
        self.ended = False

    async def start(self, timeout: float = 5) -> int:
        await self.communicator.send_input({"type": "http.request", "body": self.request_body, "more_body": False})
        start = await self.communicator.receive_output(timeout)
        assert start["type"] == "http.response.start", start
        self.status = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return self.status

    async def _read(self, timeout: float) -> None:
        message = await self.communicator.receive_output(timeout)
        assert message["type"] == "http.response.body", message
        self.buffer += message.get("body", b"").decode()
        if not message.get("more_body", False):
            self.ended = True

    def _take(self) -> dict | None:
        if self.multipart:
            while True:
                start = self.buffer.find("\r\n--graphql")
                end = self.buffer.find("\r\n--graphql", start + 1) if start >= 0 else -1
                if start < 0 or end < 0:
                    return None
                part, self.buffer = self.buffer[start:end], self.buffer[end:]
                body = part.split("\r\n\r\n", 1)[1]
                parsed = json.loads(body)
                if parsed == {}:
                    self.heartbeats += 1
                    continue
                return parsed
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            fields: dict[str, Any] = {}
            for line in block.split("\n"):
                name, _, value = line.partition(":")
                if name:
                    fields[name] = value.removeprefix(" ")
            if not fields:
                self.heartbeats += 1
                continue
            if fields.get("data"):
                fields["data"] = json.loads(fields["data"])
            return fields
        return None

    async def message(self, timeout: float = 5) -> dict:
        while (message := self._take()) is None:
            assert not self.ended, f"stream ended: {self.buffer!r}"
            await self._read(timeout)
        return message

    async def body(self, timeout: float = 5) -> str:
        """The whole (non-streamed, or remaining) body."""
        while not self.ended:
            await self._read(timeout)
        return self.buffer

    async def until_end(self, timeout: float = 5) -> list[dict]:
        """Every message left until the server ends the response."""
        messages = []
        while True:
            message = self._take()
            if message is not None:
                messages.append(message)
                continue
            if self.ended:
                return messages
            await self._read(timeout)

    async def nothing(self, timeout: float = 0.3) -> bool:
        return self._take() is None and await self.communicator.receive_nothing(timeout)

    async def disconnect(self) -> None:
        """The client goes away; the application must end."""
        await self.communicator.send_input({"type": "http.disconnect"})
        await self.communicator.wait(timeout=5)
