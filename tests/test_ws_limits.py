"""WebSocket limits: connection_init timeout, subscriptions per connection,
frame size, origins, and a client that stops reading cut off under a live
daphne while another client keeps receiving (query answers, and a room's live
events to its subscribers)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from prometheus_client import REGISTRY

from tests.clients import WSClient, token_for
from tests.live import daphne, migrated_daphne, server_env
from tests.test_http_streams_daphne import graphql, register

ROOT = Path(__file__).resolve().parent.parent
NOTIFICATIONS = "subscription Notes { notifications { __typename } }"
TYPENAME = "query T { __typename }"


@pytest.mark.django_db(transaction=True)
class TestConnectionInitTimeout:
    async def test_graphql_transport_ws_closes_4408(self, settings):
        settings.WS_CONNECTION_INIT_TIMEOUT = 1
        client = WSClient()
        await client.connect(init=False)
        started = time.monotonic()
        assert await client.receive_close(timeout=5) == 4408
        assert 0.8 < time.monotonic() - started < 4

    async def test_legacy_graphql_ws_closes_4408_too(self, settings):
        settings.WS_CONNECTION_INIT_TIMEOUT = 1
        client = WSClient(protocol="graphql-ws")
        await client.connect(init=False)
        assert await client.receive_close(timeout=5) == 4408

    async def test_initialised_in_time_stays_open(self, settings, alice):
        settings.WS_CONNECTION_INIT_TIMEOUT = 1
        client = WSClient(token=token_for(alice), protocol="graphql-ws")
        assert (await client.connect())["type"] == "connection_ack"
        assert await client.nothing(timeout=1.5)
        await client.close()

    def test_default(self, settings):
        assert settings.WS_CONNECTION_INIT_TIMEOUT == 10


@pytest.mark.django_db(transaction=True)
class TestSubscriptionsPerConnection:
    async def test_the_one_past_the_limit_gets_an_error_and_the_others_keep_running(self, settings, alice):
        settings.WS_MAX_SUBSCRIPTIONS = 2
        client = WSClient(token=token_for(alice))
        await client.connect()
        await client.subscribe(NOTIFICATIONS, op_id="1")
        await client.subscribe(NOTIFICATIONS, op_id="2")
        assert await client.nothing(timeout=0.3)
        await client.subscribe(NOTIFICATIONS, op_id="3")
        refused = await client.receive()
        assert refused == {"id": "3", "type": "error", "payload": [{"message": "Subscription limit reached"}]}
        # Completing one frees a slot.
        await client.stop("1")
        await client.subscribe(NOTIFICATIONS, op_id="4")
        assert await client.nothing(timeout=0.3)
        await client.close()

    async def test_legacy_protocol_has_the_same_limit(self, settings, alice):
        settings.WS_MAX_SUBSCRIPTIONS = 1
        client = WSClient(token=token_for(alice), protocol="graphql-ws")
        await client.connect()
        await client.subscribe(NOTIFICATIONS, op_id="1")
        await client.subscribe(NOTIFICATIONS, op_id="2")
        refused = await client.receive()
        assert refused == {"type": "error", "id": "2", "payload": {"message": "Subscription limit reached"}}
        await client.close()

    def test_default(self, settings):
        assert settings.WS_MAX_SUBSCRIPTIONS == 20


@pytest.mark.django_db(transaction=True)
class TestFrameSize:
    async def test_a_message_past_the_limit_closes_1009(self, settings):
        settings.WS_MAX_MESSAGE_BYTES = 1000
        client = WSClient()
        assert (await client.connect())["type"] == "connection_ack"
        query = "query Big { __typename " + "#" * 1000 + "\n }"
        await client.send({"type": "subscribe", "id": "1", "payload": {"query": query}})
        assert await client.receive_close() == 1009

    async def test_a_message_under_the_limit_runs(self, settings):
        settings.WS_MAX_MESSAGE_BYTES = 1000
        client = WSClient()
        await client.connect()
        assert await client.execute(TYPENAME) == {"data": {"__typename": "Query"}}
        await client.close()

    def test_default(self, settings):
        assert settings.WS_MAX_MESSAGE_BYTES == 64 * 1024


@pytest.mark.django_db(transaction=True)
class TestOrigins:
    async def _handshake(self, origin: str | None) -> bool:
        from channels.testing import WebsocketCommunicator

        from backend.asgi import application

        headers = [(b"host", b"127.0.0.1")]
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        communicator = WebsocketCommunicator(
            application, "/graphql/", subprotocols=["graphql-transport-ws"], headers=headers
        )
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    async def test_page_served_from_an_allowed_host(self):
        assert await self._handshake("http://127.0.0.1:3000") is True
        assert await self._handshake("https://localhost") is True

    async def test_cors_origin_allowed(self, settings):
        settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
        assert await self._handshake("https://app.example.com") is True

    async def test_foreign_origin_refused(self, settings):
        settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
        assert await self._handshake("https://evil.example.net") is False
        assert await self._handshake("https://app.example.com.evil.net") is False
        assert await self._handshake("null") is False

    async def test_non_browser_client_without_origin_allowed(self):
        assert await self._handshake(None) is True


# --- Under a real daphne server -----------------------------------------------------


@pytest.fixture(scope="module")
def limited_daphne(tmp_path_factory):
    """daphne with a small outgoing buffer limit (64 KiB), frame limit (8 KiB), init timeout (3 s),
    and a client cut off for not reading dropped 1 s after its close frame; yields (port, log path)."""
    folder = tmp_path_factory.mktemp("daphne-limits")
    env = server_env(
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
        WS_MAX_BUFFERED_BYTES=str(64 * 1024),
        WS_SLOW_CLIENT_CLOSE_SECONDS="1",
        WS_MAX_MESSAGE_BYTES=str(8 * 1024),
        WS_CONNECTION_INIT_TIMEOUT="3",
    )
    log = folder / "daphne.log"
    with daphne(env, log, timeout=20) as server:
        yield server.port, log


def _client_frame(text: str) -> bytes:
    """A masked text frame, as a client must send it (RFC 6455 5.3)."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    elif len(payload) < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def _raw_websocket(port: int, receive_buffer: int = 4096) -> socket.socket:
    """A graphql-transport-ws socket opened by hand, with a tiny receive buffer, that
    the test never reads from: the client that stopped reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /graphql/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # byte by byte: nothing past the handshake is read
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


# A few hundred lines of schema description per answer: tens of KiB each.
ASKED = 400  # answers of about 19 KB each
BIG_ANSWER = "query Big { __schema { types { name description fields { name description args { name } } } } }"


@pytest.mark.slow
class TestSlowClientUnderDaphne:
    async def test_a_client_that_stops_reading_is_cut_off_while_another_keeps_receiving(self, limited_daphne):
        port, log = limited_daphne
        url = f"ws://127.0.0.1:{port}/graphql/"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as reader:
            await reader.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await reader.recv())["type"] == "connection_ack"

            stalled = _raw_websocket(port)
            stalled.sendall(_client_frame(json.dumps({"type": "connection_init", "payload": {}})))
            # Ask for far more than the kernel buffers (the server's send buffer grows
            # to 4 MiB here, tcp_wmem) and the 64 KiB limit can hold: about 7.5 MB.
            for i in range(ASKED):
                message = {"type": "subscribe", "id": str(i), "payload": {"query": BIG_ANSWER}}
                stalled.sendall(_client_frame(json.dumps(message)))

            # The reading client is served all along, before and after the cut-off.
            answered = 0
            cut_off_at = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (cut_off_at is None or answered < 20):
                op = f"r{answered}"
                await reader.send(json.dumps({"type": "subscribe", "id": op, "payload": {"query": TYPENAME}}))
                async with asyncio.timeout(5):
                    assert json.loads(await reader.recv()) == {
                        "id": op,
                        "type": "next",
                        "payload": {"data": {"__typename": "Query"}},
                    }
                    assert json.loads(await reader.recv()) == {"id": op, "type": "complete"}
                answered += 1
                if cut_off_at is None and b"websocket client not reading" in log.read_bytes():
                    cut_off_at = answered
                    answered = 0
                await asyncio.sleep(0.05)
            assert cut_off_at is not None, log.read_text()[-2000:]
            assert answered >= 20

            # daphne refused to hold more than the limit (plus one answer) for it ...
            line = next(x for x in log.read_text().splitlines() if "websocket client not reading" in x)
            backlog = int(line.split("not reading: ")[1].split(" bytes")[0])
            assert 64 * 1024 < backlog < 64 * 1024 + 512 * 1024, line
            # ... and dropped the connection: draining what the kernel holds ends in EOF/reset.
            stalled.settimeout(5)
            received, closed = 0, False
            try:
                while True:
                    chunk = stalled.recv(65536)
                    if not chunk:
                        closed = True
                        break
                    received += len(chunk)
            except ConnectionResetError:
                closed = True
            except TimeoutError:
                closed = False
            stalled.close()
            assert closed, f"socket still open after {received} bytes"
            assert received < ASKED * 18_000  # far less than was asked for

    async def test_a_frame_past_the_limit_is_refused_with_1009(self, limited_daphne):
        port, _ = limited_daphne
        url = f"ws://127.0.0.1:{port}/graphql/"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as client:
            await client.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await client.recv())["type"] == "connection_ack"
            query = "query Big { __typename " + "#" * 9000 + "\n }"
            await client.send(json.dumps({"type": "subscribe", "id": "1", "payload": {"query": query}}))
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(5):
                    await client.recv()
            assert client.close_code == 1009

    async def test_legacy_protocol_is_closed_after_the_init_timeout(self, limited_daphne):
        # WS_CONNECTION_INIT_TIMEOUT=3 for this server; the close arrives by itself.
        port, _ = limited_daphne
        url = f"ws://127.0.0.1:{port}/graphql/"
        started = time.monotonic()
        async with websockets.connect(url, subprotocols=["graphql-ws"], open_timeout=5) as client:
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(8):
                    await client.recv()
            assert client.close_code == 4408
        assert 2.5 < time.monotonic() - started < 7


# --- The live fan-out with a subscriber that stopped reading ----------------------------

FANOUT_BUFFERED_LIMIT = 64 * 1024
FANOUT_EVENTS = "subscription R($roomId: ID) { roomEvents(roomId: $roomId) { __typename seq ... on MessageAdded { message { text } } } }"
FANOUT_SEND = "mutation S($roomId: ID!, $text: String!) { sendMessage(input: {roomId: $roomId, text: $text}) { id } }"
CUT_OFF_LINE = b"websocket client not reading"
# Close to the 4000 characters a message may have, two bytes each in UTF-8: 8 KB a frame.
FILLER = "\u00e9" * 3990


@pytest.fixture(scope="module")
def fanout_daphne(tmp_path_factory):
    """daphne on a migrated SQLite file with the 64 KiB outgoing buffer limit and no
    send rate limit in the way; yields (port, log path)."""
    with migrated_daphne(
        tmp_path_factory.mktemp("daphne-fanout"),
        WS_MAX_BUFFERED_BYTES=str(FANOUT_BUFFERED_LIMIT),
        RATE_LIMIT_SEND_MESSAGE="100000",
        RATE_LIMIT_REGISTER="1000",
    ) as server:
        yield server.port, server.log


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


def _server_frame(sock: socket.socket) -> tuple[int, bytes]:
    """The next frame the server sent (unmasked, RFC 6455 5.1): (opcode, payload)."""
    first, second = _recv_exactly(sock, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _recv_exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _recv_exactly(sock, 8))
    return first & 0x0F, _recv_exactly(sock, length)


def _text_of(payload: bytes) -> str | None:
    """The message text of a roomEvents ``next`` frame, else None."""
    frame = json.loads(payload)
    if frame["type"] != "next":
        return None
    event = frame["payload"]["data"]["roomEvents"] or {}
    return (event.get("message") or {}).get("text")


class StalledSubscriber:
    """A raw socket (tiny receive buffer) subscribed to the room's events, which reads
    its first event and then nothing until the server cuts it off; then it reads
    everything that is left, up to the close frame."""

    def __init__(self, port: int, token: str, room_id: str):
        self.sock = _raw_websocket(port)
        self.sock.settimeout(10)
        self.sock.sendall(_client_frame(json.dumps({"type": "connection_init", "payload": {"authToken": token}})))
        assert json.loads(_server_frame(self.sock)[1])["type"] == "connection_ack"
        subscribe = {
            "type": "subscribe",
            "id": "1",
            "payload": {"query": FANOUT_EVENTS, "variables": {"roomId": room_id}},
        }
        self.sock.sendall(_client_frame(json.dumps(subscribe)))
        self.texts: list[str] = []
        self.close_code: int | None = None
        self.cut_off = threading.Event()
        self.stopped = threading.Event()

    def until_first_event(self) -> None:
        while (text := self._text()) is None:
            pass
        self.texts.append(text)

    def _text(self) -> str | None:
        opcode, payload = _server_frame(self.sock)
        assert opcode == 0x1, (opcode, payload[:200])
        return _text_of(payload)

    def stall_until_cut_off(self, log: Path) -> None:
        """Read nothing until the server logs the cut-off (it drops the connection
        WS_SLOW_CLIENT_CLOSE_SECONDS after its close frame), then drain."""
        with open(log, "rb") as lines:
            lines.seek(0, os.SEEK_END)
            seen = b""
            while CUT_OFF_LINE not in seen:
                if self.stopped.wait(0.01):
                    return
                seen = seen[-200:] + lines.read()
        self.cut_off.set()
        with contextlib.suppress(ConnectionError, TimeoutError):
            while True:
                opcode, payload = _server_frame(self.sock)
                if opcode == 0x8:
                    (self.close_code,) = struct.unpack("!H", payload[:2])
                    return
                assert opcode == 0x1, (opcode, payload[:200])
                if (text := _text_of(payload)) is not None:
                    self.texts.append(text)

    def close(self) -> None:
        """Stop, wherever it waits, and close the socket."""
        self.stopped.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Reader:
    """A subscriber that reads all along: the text of each message event."""

    def __init__(self, ws):
        self.ws = ws
        self.received: list[str] = []

    async def run(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosedOK):
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame["type"] == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                elif (text := _text_of(raw)) is not None:
                    self.received.append(text)

    def big(self) -> list[str]:
        return [text for text in self.received if not text.startswith("warm-up")]


async def _reading_subscriber(port: int, token: str, room_id: str) -> Reader:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/graphql/", subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authToken": token}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    variables = {"roomId": room_id}
    await ws.send(
        json.dumps({"type": "subscribe", "id": "1", "payload": {"query": FANOUT_EVENTS, "variables": variables}})
    )
    return Reader(ws)


@pytest.mark.slow
async def test_the_live_fan_out_cuts_off_a_subscriber_that_stopped_reading_while_the_others_keep_up(fanout_daphne):
    port, log = fanout_daphne
    owner, stalled_token, *reader_tokens = [register(port, name) for name in ("owner", "stalled", "r1", "r2", "r3")]
    created = graphql(port, 'mutation C { createRoom(input: {name: "fan-out"}) { id } }', token=owner)
    room_id = created["createRoom"]["id"]
    for token in (stalled_token, *reader_tokens):
        graphql(port, "mutation J($r: ID!) { joinRoom(roomId: $r) { id } }", {"r": room_id}, token)

    async def send(text: str) -> None:
        await asyncio.to_thread(graphql, port, FANOUT_SEND, {"roomId": room_id, "text": text}, owner)

    readers: list[Reader] = []
    reading: list[asyncio.Task] = []
    stalled = None
    try:
        for token in reader_tokens:
            readers.append(await _reading_subscriber(port, token, room_id))
            reading.append(asyncio.create_task(readers[-1].run()))
        stalled = await asyncio.to_thread(StalledSubscriber, port, stalled_token, room_id)

        # Everyone is live once each has an event: warm-ups until then.
        first = asyncio.create_task(asyncio.to_thread(stalled.until_first_event))
        for n in range(100):
            if first.done() and all(reader.received for reader in readers):
                break
            await send(f"warm-up {n}")
            await asyncio.sleep(0.1)
        await first
        assert all(reader.received for reader in readers)
        stalling = asyncio.create_task(asyncio.to_thread(stalled.stall_until_cut_off, log))

        # Big messages until the stalled socket's buffers (its small receive buffer, the
        # server's send buffer, then daphne's, up to the 64 KiB limit) are full and it
        # is cut off, then as many more. (a) Each reaches every reader within seconds.
        sent: list[str] = []
        worst = 0.0
        after_cut_off = None
        while after_cut_off is None or len(sent) < 2 * after_cut_off:
            if after_cut_off is None and stalled.cut_off.is_set():
                after_cut_off = len(sent)
                continue
            text = f"{len(sent):05d} {FILLER}"
            # Far past what the kernel buffers (tcp_wmem's 4 MiB at most) and the limit.
            sent_bytes = len(sent) * len(text.encode())
            assert after_cut_off or sent_bytes < 16 * 1024 * 1024, f"never cut off: {sent_bytes} bytes sent"
            await send(text)
            sent.append(text)
            sent_at = time.monotonic()
            try:
                async with asyncio.timeout(5):
                    while any(len(reader.big()) < len(sent) for reader in readers):
                        await asyncio.sleep(0.002)
            except TimeoutError:
                raise AssertionError(f"message {len(sent) - 1} not delivered to every reader within 5 s") from None
            worst = max(worst, time.monotonic() - sent_at)
        await asyncio.wait_for(stalling, 10)
    finally:
        if stalled is not None:
            stalled.close()
        for reader in readers:
            await reader.ws.close()
        await asyncio.gather(*reading, return_exceptions=True)

    # (a) ... every message, once and in order.
    for reader in readers:
        assert reader.big() == sent
    # (b) The stalled socket got those up to its cut-off, in order, then the close frame: 4429.
    big = [text for text in stalled.texts if not text.startswith("warm-up")]
    assert big == sent[: len(big)] and 0 < len(big) <= after_cut_off, (len(big), after_cut_off)
    assert stalled.close_code == 4429, stalled.close_code
    print(
        f"fan-out: cut off after {after_cut_off} of {len(sent)} messages of {len(sent[0].encode())} bytes; "
        f"the stalled socket read {len(big)}; readers' worst delay {worst:.3f} s"
    )


# --- Malformed frames: the socket closes (4400), it never lingers deaf -----------------


@pytest.fixture(scope="module")
def plain_daphne(tmp_path_factory):
    """daphne with the default limits (frames up to 64 KiB); yields (port, pid)."""
    folder = tmp_path_factory.mktemp("daphne-malformed")
    env = server_env(DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}")
    with daphne(env, folder / "daphne.log", timeout=60) as server:
        yield server.port, server.process.pid


NESTED = "[" * 30_000 + "]" * 30_000
QUERY = {"query": "query T { __typename }"}
MALFORMED = {
    "nested JSON": ("graphql-transport-ws", NESTED),
    "nested JSON (legacy)": ("graphql-ws", NESTED),
    "nested JSON in a subscribe": (
        "graphql-transport-ws",
        '{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }", "variables": '
        + "[" * 30_000
        + "]" * 30_000
        + "}}",
    ),
    "subscribe id is a list": ("graphql-transport-ws", json.dumps({"type": "subscribe", "id": [1], "payload": QUERY})),
    "subscribe id is an object": (
        "graphql-transport-ws",
        json.dumps({"type": "subscribe", "id": {"a": 1}, "payload": QUERY}),
    ),
    "legacy start without payload": ("graphql-ws", json.dumps({"type": "start", "id": "1"})),
    "legacy start id is a list": ("graphql-ws", json.dumps({"type": "start", "id": [1], "payload": QUERY})),
}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _initialised(url: str, protocol: str):
    client = await websockets.connect(url, subprotocols=[protocol], open_timeout=5, max_size=None)
    await client.send(json.dumps({"type": "connection_init", "payload": {}}))
    async with asyncio.timeout(5):
        assert json.loads(await client.recv())["type"] == "connection_ack"
    return client


@pytest.mark.slow
class TestMalformedFramesUnderDaphne:
    @pytest.mark.parametrize("case", sorted(MALFORMED))
    async def test_the_socket_closes_with_4400(self, plain_daphne, case):
        port, _ = plain_daphne
        protocol, frame = MALFORMED[case]
        client = await _initialised(f"ws://127.0.0.1:{port}/graphql/", protocol)
        await client.send(frame)
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    message = json.loads(await client.recv())
                    assert message["type"] in {"error", "ka"}, message  # never a result
        assert client.close_code == 4400, (client.close_code, client.close_reason)

    async def test_frames_after_a_malformed_one_are_not_buffered(self, plain_daphne):
        """What the issue measured: a dead handler let the server take 30 MB in 2 s."""
        port, pid = plain_daphne
        url = f"ws://127.0.0.1:{port}/graphql/"
        client = await _initialised(url, "graphql-transport-ws")
        before = rss_bytes(pid)
        await client.send(json.dumps({"type": "subscribe", "id": [1], "payload": QUERY}))
        filler = json.dumps({"type": "ping", "payload": {"pad": "x" * 60_000}})
        sent = 0
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(2):
                while True:
                    await client.send(filler)
                    sent += len(filler)
        assert client.close_code == 4400
        assert sent < 8 * 1024 * 1024, f"{sent} bytes accepted after the malformed frame"
        assert rss_bytes(pid) - before < 16 * 1024 * 1024
        # The server is fine: the next client is served.
        other = await _initialised(url, "graphql-transport-ws")
        await other.send(json.dumps({"type": "subscribe", "id": "1", "payload": QUERY}))
        async with asyncio.timeout(5):
            assert json.loads(await other.recv())["payload"] == {"data": {"__typename": "Query"}}
        await other.close()


@pytest.mark.django_db(transaction=True)
class TestInboundQueue:
    @pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
    async def test_frames_queued_past_the_limit_close_the_socket(self, settings, monkeypatch, alice, protocol):
        """The handler is held up by connection_init (a channel layer that answers in
        a second) while 50 frames arrive: past WS_MAX_QUEUED_MESSAGES the socket closes."""
        layer = get_channel_layer()
        group_add = layer.group_add

        async def slow_group_add(group, channel):
            await asyncio.sleep(1)
            return await group_add(group, channel)

        monkeypatch.setattr(layer, "group_add", slow_group_add)
        settings.WS_MAX_QUEUED_MESSAGES = 10
        client = WSClient(protocol=protocol)
        await client.connect(init=False)
        await client.send({"type": "connection_init", "payload": {"authToken": await sync_to_async(token_for)(alice)}})
        cut_offs = REGISTRY.get_sample_value("chat_slow_client_cutoffs_total", {"protocol": protocol})
        for _ in range(50):
            await client.send({"type": "ping"})  # harmless alone: a pong, or ignored by the legacy protocol
            await asyncio.sleep(0.005)
        assert await client.receive_close() == 4429
        assert REGISTRY.get_sample_value("chat_slow_client_cutoffs_total", {"protocol": protocol}) == cut_offs + 1

    async def test_under_the_limit_every_frame_is_handled(self, settings, alice):
        settings.WS_MAX_QUEUED_MESSAGES = 10
        client = WSClient(token=await sync_to_async(token_for)(alice))
        assert (await client.connect())["type"] == "connection_ack"
        for _ in range(50):
            await client.send({"type": "ping"})
            assert await client.communicator.receive_json_from(timeout=5) == {"type": "pong"}
        await client.close()

    def test_default(self, settings):
        assert settings.WS_MAX_QUEUED_MESSAGES == 100


# --- Frames that are not JSON text: what Strawberry's handlers answer ------------------


@pytest.mark.django_db(transaction=True)
class TestFramesNotJSONText:
    async def test_a_binary_frame_closes_graphql_transport_ws_with_4400(self, alice):
        client = WSClient(token=await sync_to_async(token_for)(alice))
        assert (await client.connect())["type"] == "connection_ack"
        await client.communicator.send_to(bytes_data=b'{"type": "ping"}')
        assert await client.receive_close() == 4400

    async def test_text_that_is_not_json_closes_graphql_transport_ws_with_4400(self, alice):
        client = WSClient(token=await sync_to_async(token_for)(alice))
        assert (await client.connect())["type"] == "connection_ack"
        await client.communicator.send_to(text_data="{not json")
        assert await client.receive_close() == 4400

    async def test_a_binary_frame_closes_graphql_ws_with_1002(self, alice):
        client = WSClient(token=await sync_to_async(token_for)(alice), protocol="graphql-ws")
        assert (await client.connect())["type"] == "connection_ack"
        await client.communicator.send_to(bytes_data=b'{"type": "stop", "id": "1"}')
        assert await client.receive_close() == 1002

    async def test_text_that_is_not_json_is_ignored_by_graphql_ws(self, alice):
        client = WSClient(token=await sync_to_async(token_for)(alice), protocol="graphql-ws")
        assert (await client.connect())["type"] == "connection_ack"
        await client.communicator.send_to(text_data="{not json")
        # Still served: the next operation is answered (a query, which graphql-ws refuses).
        op_id = await client.subscribe(QUERY["query"])
        answer = await client.receive()
        assert (answer["type"], answer["id"]) == ("error", op_id), answer
        await client.close()

    @pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
    async def test_frames_sent_together_are_handled_in_order(self, alice, protocol):
        """No read loop per socket: frames that arrive before the previous one is handled
        (connection_init still looking up the token) wait, and go in order."""
        client = WSClient(token=await sync_to_async(token_for)(alice), protocol=protocol)
        await client.connect(init=False)
        kind = "start" if protocol == "graphql-ws" else "subscribe"
        await client.send({"type": "connection_init", "payload": {"authToken": client.token}})
        for n in range(1, 6):
            query = f"query Q{n} {{ __typename }}"
            await client.send({"type": kind, "id": str(n), "payload": {"query": query}})
        assert (await client.receive())["type"] == "connection_ack"
        # graphql-transport-ws answers each query (next, complete); graphql-ws refuses each (error).
        answer = "error" if protocol == "graphql-ws" else "next"
        got = []
        while len(got) < 5:
            message = await client.receive()
            if message["type"] == answer:
                got.append(message["id"])
        assert got == ["1", "2", "3", "4", "5"]
        await client.close()
