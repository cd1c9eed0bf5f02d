"""Load client: many WebSocket subscribers in one asyncio process.

    python -m bench.client SPEC.json OUT.json

SPEC: {"url": "ws://127.0.0.1:PORT", "kind": "graphql" | "baseline",
       "query": "...", "conns": [{"token": "...", "path": "/graphql/", "variables": {...}}, ...]}

"graphql" sockets speak graphql-transport-ws (the project and the Node peer alike):
connection_init with the token, then one subscribe; "baseline" sockets only listen.

Talks to the harness over stdin/stdout, one line each:
  -> "CONNECTED <n> <failed>"     every socket open (and subscribed, for GraphQL)
  <- "COUNT"  -> "COUNT <frames> <warm sockets>"   progress, for draining and warm-up
  <- "STOP"   -> "DONE"           after writing OUT: per socket, [[label, t_recv], ...]

Frames are recognised by the message text alone (a regex, no JSON parsing, so
that the client's CPU stays small next to the server's): ``warm ...`` texts mark
a socket as live, ``bench <run> <k> <t_send>`` texts are the measured messages.
Times are ``time.monotonic()``, which is one clock for every process on Linux.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time

import websockets

TEXT_RE = re.compile(r'"text": ?"((?:warm|bench) [^"]*)"')


class Socket:
    __slots__ = ("errors", "received", "warm", "ws")

    def __init__(self):
        self.received: list = []
        self.warm = False
        self.errors = 0
        self.ws = None


async def open_socket(spec: dict, conn: dict, sock: Socket, gate: asyncio.Semaphore) -> bool:
    url = spec["url"]
    graphql = spec["kind"] == "graphql"
    path = conn["path"]
    async with gate:
        for attempt in range(5):
            try:
                ws = await websockets.connect(
                    url + path,
                    subprotocols=["graphql-transport-ws"] if graphql else None,
                    origin="http://127.0.0.1",
                    open_timeout=120,
                    ping_interval=None,
                    max_size=2**22,
                    compression=None,
                )
                if graphql:
                    await ws.send(json.dumps({"type": "connection_init", "payload": {"authToken": conn["token"]}}))
                    ack = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    if ack.get("type") != "connection_ack":
                        raise RuntimeError(f"no ack: {ack}")
                    query = {"query": spec["query"], "variables": conn["variables"]}
                    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
                sock.ws = ws
                return True
            except (TimeoutError, OSError, websockets.WebSocketException, RuntimeError) as error:
                if attempt == 4:
                    print(f"connect failed: {error!r}", file=sys.stderr)
                    return False
                await asyncio.sleep(0.5 * (attempt + 1))
    return False


async def read_socket(sock: Socket) -> None:
    received = sock.received
    clock = time.monotonic
    try:
        async for frame in sock.ws:
            now = clock()
            match = TEXT_RE.search(frame)
            if match is None:
                if '"type":"error"' in frame.replace(" ", "") or '"errors"' in frame:
                    sock.errors += 1
                    print(f"error frame: {frame[:300]}", file=sys.stderr)
                continue
            label = match.group(1)
            if label.startswith("warm"):
                sock.warm = True
            else:
                received.append((label, now))
    except websockets.WebSocketException:
        pass


async def main(spec_path: str, out_path: str) -> None:
    spec = json.load(open(spec_path))
    sockets = [Socket() for _ in spec["conns"]]
    gate = asyncio.Semaphore(spec.get("connect_concurrency", 64))
    opened = await asyncio.gather(
        *(open_socket(spec, c, s, gate) for c, s in zip(spec["conns"], sockets, strict=False))
    )
    readers = [asyncio.create_task(read_socket(s)) for s in sockets if s.ws is not None]
    print(f"CONNECTED {sum(opened)} {len(opened) - sum(opened)}", flush=True)

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        line = (await stdin.readline()).decode().strip()
        if line == "COUNT":
            frames = sum(len(s.received) for s in sockets)
            warm = sum(s.warm for s in sockets)
            print(f"COUNT {frames} {warm}", flush=True)
        elif line in ("STOP", ""):
            break
    result = {
        "received": [s.received for s in sockets],
        "errors": sum(s.errors for s in sockets),
        "failed": len(opened) - sum(opened),
    }
    with open(out_path, "w") as out:
        json.dump(result, out)
    for reader in readers:
        reader.cancel()
    closing = [s.ws.close() for s in sockets if s.ws is not None]
    if closing:
        await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=10)
    print("DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
