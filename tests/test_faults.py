"""Faults, in services mode, against a live daphne whose Postgres and Redis are
reached through TCP proxies this test controls: "stopping" a service closes its
proxy's listener (connection refused) and aborts every open connection, as a
crashed or restarted server does; the machine's real services are never touched.

With Postgres down: SERVICE_UNAVAILABLE for queries and mutations (also when the
token's user cannot be looked up), /healthz 503, the process stays up, and it
recovers by itself. With Redis down: HTTP keeps working, subscriptions end with
an error instead of hanging, and afterwards new subscriptions work and resume
fills the gap. Nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
import uuid
from pathlib import Path

import pytest
import websockets
from channels.layers import get_channel_layer
from django.db import connection

from chat.cursors import decode_cursor
from chat.events import EVENT_TYPE, room_group
from chat.models import Message
from schema.global_ids import decode_id
from tests.clients import token_for
from tests.live import Daphne, daphne, proxied_env, service_proxies

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent

ME = "query Me { me { id username } }"
REGISTER = (
    'mutation Register($name: String!) { register(input: {username: $name, email: "x@example.com", '
    'password: "a long enough password 7", displayName: "X"}) { token } }'
)
CREATE_ROOM = "mutation Create($name: String!) { createRoom(input: {name: $name}) { id } }"
JOIN = "mutation Join($id: ID!) { joinRoom(roomId: $id) { id } }"
SEND = (
    "mutation Send($room: ID!, $text: String!, $key: String) "
    "{ sendMessage(input: {roomId: $room, text: $text, clientId: $key}) { id text } }"
)
ROOM_EVENTS = (
    "subscription Events($room: ID, $after: String) { roomEvents(roomId: $room, after: $after) "
    "{ __typename cursor ... on MessageAdded { message { text } } } }"
)


class LiveServer:
    def __init__(self, server: Daphne):
        self.port, self.process, self.log = server.port, server.process, server.log

    def _request(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def post(self, query: str, variables: dict | None = None, token: str | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"JWT {token}"
        return self._request("POST", "/graphql/", json.dumps({"query": query, "variables": variables or {}}), headers)

    def get(self, path: str) -> tuple[int, dict]:
        return self._request("GET", path)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql/"


@pytest.fixture
def proxies(transactional_db):
    """(postgres proxy, redis proxy) in front of the test database and Redis db."""
    with service_proxies() as both:
        yield both


@pytest.fixture
def live(proxies, tmp_path):
    """daphne serving the test database and Redis through the proxies."""
    env = proxied_env(*proxies, REALTIME_CHECK_INTERVAL="1")
    with daphne(env, tmp_path / "daphne.log") as server:
        yield LiveServer(server)


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def wait_until(check, timeout: float = 20, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)


def no_traceback(body: dict) -> bool:
    return "Traceback" not in json.dumps(body)


class TestPostgresDown:
    def test_service_unavailable_then_recovers_by_itself_losing_nothing(self, live, proxies, alice):
        pg, _ = proxies
        token = token_for(alice)
        status, body = live.post(CREATE_ROOM, {"name": "faults"}, token)
        assert status == 200, body
        room = body["data"]["createRoom"]["id"]
        acknowledged = []
        status, body = live.post(SEND, {"room": room, "text": "before", "key": "k-before"}, token)
        acknowledged.append(body["data"]["sendMessage"]["text"])

        pg.down()
        # Signed in: the token's user cannot be looked up while the context is built.
        status, body = live.post(ME, token=token)
        assert status < 500 and codes(body) == ["SERVICE_UNAVAILABLE"] and no_traceback(body), body
        status, body = live.post(REGISTER, {"name": "newcomer"})  # anonymous: the mutation itself fails
        assert status < 500 and codes(body) == ["SERVICE_UNAVAILABLE"], body
        status, body = live.post(SEND, {"room": room, "text": "during", "key": "k-during"}, token)
        assert status < 500 and codes(body) == ["SERVICE_UNAVAILABLE"] and no_traceback(body), body
        status, body = live.get("/healthz")
        assert status == 503 and body["checks"]["database"].startswith("error")
        assert live.process.poll() is None

        pg.up()
        # Persistent connections are health-checked: the next requests reconnect.
        wait_until(lambda: live.post(ME, token=token)[1].get("data", {}).get("me"))
        assert live.get("/healthz")[0] == 200
        status, body = live.post(SEND, {"room": room, "text": "after", "key": "k-after"}, token)
        acknowledged.append(body["data"]["sendMessage"]["text"])

        stored = list(Message.objects.filter(room__name="faults").order_by("id").values_list("text", flat=True))
        assert stored == acknowledged == ["before", "after"]

    def test_a_database_that_does_not_answer_fails_fast(self, live, proxies, alice):
        """A Postgres that accepts TCP but never answers (hung host): connect_timeout bounds the wait."""
        pg, _ = proxies
        token = token_for(alice)
        assert live.post(ME, token=token)[1]["data"]["me"]["username"] == "alice"
        silent = socket.socket()
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        pg.down()
        silent.bind(("127.0.0.1", pg.port))
        silent.listen(100)  # accepts connections (kernel backlog), never answers
        try:
            started = time.monotonic()
            status, body = live.post(ME, token=token)
            elapsed = time.monotonic() - started
            assert status < 500 and codes(body) == ["SERVICE_UNAVAILABLE"], body
            assert elapsed < 10
        finally:
            silent.close()
        pg.up()
        wait_until(lambda: live.post(ME, token=token)[1].get("data", {}).get("me"))


class TestPostgresDownUnderASubscription:
    async def test_a_subscription_that_needs_the_database_closes_the_socket_with_1013(self, live, proxies, alice):
        """A subscription that must read the event log while Postgres is down (here to
        fill a gap) ends its socket with 1013, as a failing channel layer does: the
        client reconnects and resumes. An error result would end the subscription for
        good, and graphql-ws clients do not resubscribe after one."""
        pg, _ = proxies
        token = await asyncio.to_thread(token_for, alice)
        _, body = await asyncio.to_thread(live.post, CREATE_ROOM, {"name": "pg-gap"}, token)
        room = body["data"]["createRoom"]["id"]
        subscription = await _subscribe(live.ws_url, token, {"room": room})
        await asyncio.sleep(0.5)
        await asyncio.to_thread(live.post, SEND, {"room": room, "text": "one", "key": "k-one"}, token)
        event = (await _next_message(subscription))["payload"]["data"]["roomEvents"]
        while event["__typename"] != "MessageAdded":
            event = (await _next_message(subscription))["payload"]["data"]["roomEvents"]
        seq = decode_cursor(event["cursor"])[decode_id(room, "Room")]

        pg.down()
        # An event arrives ahead of one that never comes: after the reorder wait the
        # subscription asks the event log for the missing one, and Postgres is down.
        pk = decode_id(room, "Room")
        message = {"type": EVENT_TYPE, "room": pk, "seq": seq + 2, "kind": "MessageAdded", "payload": {}}
        await get_channel_layer().group_send(room_group(pk), {**message, "group": room_group(pk)})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(15):
                while True:
                    ended = await _next_message(subscription, timeout=15)
                    assert ended["type"] == "next" and not ended["payload"].get("errors"), ended
        assert closed.value.rcvd.code == 1013
        pg.up()


async def _subscribe(url: str, token: str, variables: dict):
    socket_ = await websockets.connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10)
    await socket_.send(json.dumps({"type": "connection_init", "payload": {"authToken": token}}))
    ack = json.loads(await asyncio.wait_for(socket_.recv(), 10))
    assert ack["type"] == "connection_ack", ack
    await socket_.send(
        json.dumps({"type": "subscribe", "id": "1", "payload": {"query": ROOM_EVENTS, "variables": variables}})
    )
    return socket_


async def _next_message(socket_, timeout: float = 10) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(socket_.recv(), timeout))
        if message["type"] in {"ping", "pong"}:
            continue
        return message


class TestRedisDown:
    async def test_http_keeps_working_subscriptions_end_and_resume_fills_the_gap(self, live, proxies, alice, bob):
        _, redis = proxies
        alice_token, bob_token = await asyncio.to_thread(token_for, alice), await asyncio.to_thread(token_for, bob)
        post = live.post

        _, body = await asyncio.to_thread(post, CREATE_ROOM, {"name": "redis-faults"}, alice_token)
        room = body["data"]["createRoom"]["id"]
        await asyncio.to_thread(post, JOIN, {"id": room}, bob_token)

        subscription = await _subscribe(live.ws_url, bob_token, {"room": room})
        await asyncio.sleep(0.5)
        _, body = await asyncio.to_thread(
            post, SEND, {"room": room, "text": "one", "key": str(uuid.uuid4())}, alice_token
        )
        assert body["data"]["sendMessage"]["text"] == "one"
        event = await _next_message(subscription)
        while event["payload"]["data"]["roomEvents"]["__typename"] != "MessageAdded":
            event = await _next_message(subscription)
        assert event["payload"]["data"]["roomEvents"]["message"]["text"] == "one"
        cursor = event["payload"]["data"]["roomEvents"]["cursor"]

        redis.down()
        # The subscription ends with an error (or the socket closes), within seconds, never hangs.
        ended = None
        try:
            async with asyncio.timeout(20):
                while ended is None:
                    message = await _next_message(subscription, timeout=20)
                    if message["type"] in {"error", "complete"} or message.get("payload", {}).get("errors"):
                        ended = message
        except websockets.ConnectionClosed as closed:
            ended = {"closed": closed.rcvd.code if closed.rcvd else None}
        # 1013 "Try Again Later": reconnect, then resume from the last cursor.
        assert ended == {"closed": 1013}
        await subscription.close()

        # HTTP keeps working: messages are stored and acknowledged.
        acknowledged = ["one"]
        for text in ("two", "three"):
            status, body = await asyncio.to_thread(
                post, SEND, {"room": room, "text": text, "key": str(uuid.uuid4())}, alice_token
            )
            assert status == 200 and body["data"]["sendMessage"]["text"] == text, body
            acknowledged.append(text)
        status, body = await asyncio.to_thread(post, ME, None, alice_token)
        assert body["data"]["me"]["username"] == "alice"
        assert (await asyncio.to_thread(live.get, "/healthz"))[0] == 503
        assert live.process.poll() is None
        # A new socket meanwhile: the same 1013, not an HTTP 500 handshake refusal.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _next_message(await _subscribe(live.ws_url, bob_token, {"room": room}))
        assert closed.value.rcvd.code == 1013

        redis.up()
        await asyncio.sleep(1)
        # A new subscription resuming after "one" gets what it missed, then live events.
        subscription = await _subscribe(live.ws_url, bob_token, {"room": room, "after": cursor})
        seen = []
        async with asyncio.timeout(20):
            while len(seen) < 2:
                message = await _next_message(subscription)
                assert message["type"] == "next", message
                data = message["payload"]["data"]["roomEvents"]
                if data["__typename"] == "MessageAdded":
                    seen.append(data["message"]["text"])
        assert seen == ["two", "three"]
        await asyncio.sleep(0.5)
        _, body = await asyncio.to_thread(
            post, SEND, {"room": room, "text": "four", "key": str(uuid.uuid4())}, alice_token
        )
        acknowledged.append("four")
        async with asyncio.timeout(10):
            while True:
                data = (await _next_message(subscription))["payload"]["data"]["roomEvents"]
                if data["__typename"] == "MessageAdded":
                    assert data["message"]["text"] == "four"
                    break
        await subscription.close()

        def stored_texts() -> list[str]:
            try:
                return list(
                    Message.objects.filter(room__name="redis-faults").order_by("id").values_list("text", flat=True)
                )
            finally:
                connection.close()  # this worker thread's own session: the test database is dropped later

        assert await asyncio.to_thread(stored_texts) == acknowledged
