"""Subscriptions over HTTP under a real daphne, spoken byte by byte as curl does:
the docs' SSE example (the head at once, an event with its id, Last-Event-ID
resume) and a client that goes away mid-stream. (A client that stops reading
is cut off from what daphne holds unsent for it: the kernel's socket buffers
take megabytes first, too slow to fill here; tests/schema/test_live_adapters.py
guards the way to daphne's buffer, tests/schema/test_http_subscriptions.py the
cut-off.)"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request

import pytest

from tests.live import migrated_daphne

pytestmark = pytest.mark.slow

ROOM_EVENTS = "subscription { roomEvents { __typename cursor seq ... on MessageAdded { message { text } } } }"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """daphne on a SQLite file; yields (port, log)."""
    with migrated_daphne(tmp_path_factory.mktemp("daphne-http-streams"), RATE_LIMIT_REGISTER="1000") as live:
        yield live.port, live.log


def graphql(port: int, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"JWT {token}"
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql/", body, headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        result = json.loads(response.read())
    assert "errors" not in result, result
    return result["data"]


def register(port: int, name: str) -> str:
    name = f"{name}{time.monotonic_ns() % 10**8}"
    query = "mutation R($input: RegisterInput!) { register(input: $input) { token } }"
    data = graphql(port, query, {"input": {"username": name, "email": f"{name}@example.com", "password": PASSWORD}})
    return data["register"]["token"]


class RawStream:
    """An HTTP/1.1 request on a plain socket, its chunked response read as it comes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.text = ""

    @classmethod
    async def open(
        cls, port: int, query: str, token: str, headers: dict[str, str] | None = None, receive_buffer: int = 0
    ) -> RawStream:
        sock = socket.socket()
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect: a small window
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        body = json.dumps({"query": query}).encode()
        lines = [
            "POST /graphql/ HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Content-Type: application/json",
            "Accept: text/event-stream",
            f"Authorization: JWT {token}",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        stream = cls(reader, writer)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
        status_line, *header_lines = head.strip().split("\r\n")
        stream.status = int(status_line.split()[1])
        stream.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        return stream

    async def _chunk(self) -> bool:
        size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            return False
        self.text += (await self.reader.readexactly(size + 2))[:-2].decode()
        return True

    async def event(self, timeout: float = 10) -> dict:
        """The next SSE event with data (comments skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                while "\n\n" in self.text:
                    block, self.text = self.text.split("\n\n", 1)
                    fields = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
                    if fields:
                        return fields
                assert await self._chunk(), "the stream ended"

    def close(self) -> None:
        self.writer.transport.abort()  # the client goes away, as a killed curl does


async def until_delivered(port: int, token: str, room: str, stream: RawStream) -> dict:
    """Send typing until the stream shows it (it is then live), then a message; its event."""
    for _ in range(40):
        graphql(port, "mutation T($r: ID!) { setTyping(roomId: $r, typing: true) }", {"r": room}, token)
        try:
            event = await stream.event(timeout=0.5)
        except TimeoutError:
            continue
        assert "TypingChanged" in event["data"], event
        break
    else:
        raise AssertionError("the stream never became live")
    return event


async def test_the_docs_sse_example_and_resume_and_a_client_that_goes_away(server):
    port, log = server
    alice, bob = register(port, "alice"), register(port, "bob")
    room = graphql(port, 'mutation { createRoom(input: {name: "sse"}) { id } }', token=alice)["createRoom"]["id"]
    graphql(port, "mutation J($r: ID!) { joinRoom(roomId: $r) { id } }", {"r": room}, bob)

    stream = await RawStream.open(port, ROOM_EVENTS, alice)
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["x-accel-buffering"] == "no"
    await until_delivered(port, bob, room, stream)
    send = "mutation S($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
    graphql(port, send, {"i": {"roomId": room, "text": "first"}}, bob)
    event = await stream.event()
    assert event["event"] == "next"
    data = json.loads(event["data"])["data"]["roomEvents"]
    assert data["message"] == {"text": "first"} and event["id"] == data["cursor"]

    stream.close()  # gone mid-stream
    graphql(port, send, {"i": {"roomId": room, "text": "second"}}, bob)
    graphql(port, send, {"i": {"roomId": room, "text": "third"}}, bob)

    again = await RawStream.open(port, ROOM_EVENTS, alice, {"Last-Event-ID": event["id"]})
    texts = [json.loads((await again.event())["data"])["data"]["roomEvents"]["message"]["text"] for _ in range(2)]
    assert texts == ["second", "third"]
    again.close()
    await asyncio.sleep(0.3)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
