"""The benchmark harness: ``python -m bench.run [--quick] [--modes embedded,services]``.

For each mode the harness re-runs itself as a child process with that mode's
environment (embedded: a temporary SQLite file and the in-memory layer;
services: Postgres database ``bench`` and Redis db 5, both recreated, or
``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL``), prepares users and rooms through
the ORM, starts daphne subprocesses on free ports (``bench.asgi``: the real app
plus the floor) and the Node.js peer (``bench/peer_node``), and drives them with
load clients in separate processes (``bench.client``, ``bench.httpload``).

Three sides, one after the other, with the same clients and the same kind of
sender:
- *project*: this project's ``roomEvents`` subscription and ``sendMessage`` mutation;
- *floor*: a bare Channels consumer on the same daphne and channel layer that
  forwards each event the project publishes (``bench/consumers.py``), the least a
  Channels server can do per delivery;
- *peer*: the Node.js server a user could write instead (graphql-js, graphql-ws,
  graphql-http, in-memory pub/sub), skipped when node or its modules are missing.
Each scenario prints a table with the ratios project/floor and project/peer, and
the targets with verdicts; every delivery is checked (each message reaches each
subscriber of its room exactly once).

Exit status: non-zero only when the harness is broken (a scenario raised, a
socket could not connect, a side delivered nothing); speed never fails a run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PEER_DIR = ROOT / "bench" / "peer_node"
PY = sys.executable
DAPHNE = str(Path(PY).parent / "daphne")
NODE = shutil.which("node")
APP = "bench.asgi:application"
SERVICES_DB = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench")
SERVICES_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")

SIDES = ("graphql", "baseline", "peer")  # keys in the results JSON
LABELS = {"graphql": "project", "baseline": "floor", "peer": "peer", "view": "plain view"}

# The targets: (what, the side the project is compared with, operator, threshold).
# Ratios are project / that side, from one run.
TARGETS = {
    "fanout_rate_1000_peer": ("fan-out N=1000 deliveries/s", "peer", ">=", 1.0),
    "fanout_rate_1000_floor": ("fan-out N=1000 deliveries/s", "baseline", ">=", 1.2),
    "fanout_rate_200_peer": ("fan-out N=200 deliveries/s", "peer", ">=", 0.8),
    "fanout_p99_peer": ("fan-out p99 at saturation", "peer", "<=", 1.0),
    "memory_per_conn": ("idle memory per subscribed socket", "baseline", "<=", 1.0),
    "redis_per_event": ("Redis commands per event per process", None, "<=", 4),
    "history_rps": ("history requests/s", "view", ">=", 0.7),
    "scaleout": ("2 processes / 1, deliveries/s", None, ">=", 1.6),
}

# --- Operations (the contract in DESIGN.md) -----------------------------------------

ROOM_EVENTS = """subscription RoomEvents($roomId: ID!) {
  roomEvents(roomId: $roomId) {
    ... on MessageAdded { message { id text sender { username } } }
    cursor
  }
}"""

SEND_MESSAGE = """mutation SendMessage($roomId: ID!, $text: String!, $clientId: String) {
  sendMessage(input: {roomId: $roomId, text: $text, clientId: $clientId}) { __typename }
}"""

CREATE_ROOM = """mutation CreateRoom($name: String!, $memberIds: [ID!]) {
  createRoom(input: {name: $name, memberIds: $memberIds}) { id }
}"""

MESSAGES = """query Messages($roomId: ID!, $first: Int) {
  messages(roomId: $roomId, first: $first) {
    edges { cursor node { id text createdAt sender { id username } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


# --- Small helpers -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def ratio(a, b) -> float:
    if a is None or b is None or not b:
        return float("nan")
    return a / b


def commit() -> str:
    try:
        rev = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "."], cwd=ROOT).returncode != 0
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def log(*args) -> None:
    print(*args, flush=True)


def peer_missing() -> str | None:
    """Why the Node peer cannot run here, or None."""
    if NODE is None:
        return "node not found"
    if not (PEER_DIR / "node_modules").is_dir():
        return "bench/peer_node/node_modules missing (cd bench/peer_node && npm ci)"
    return None


class HarnessError(RuntimeError):
    pass


# --- Servers -----------------------------------------------------------------------


class Server:
    """One server process answering ``GET /healthz``: daphne serving
    ``bench.asgi:application``, or the Node peer."""

    graphql_path = "/graphql/"

    def __init__(self, cmd: list[str], env: dict, logdir: Path, name: str):
        self.port = free_port()
        self.logfile = open(logdir / f"{name}-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [part.replace("{port}", str(self.port)) for part in cmd],
            cwd=ROOT,
            env={**env, "PORT": str(self.port)},
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"{name} exited with {self.proc.returncode}, see {self.logfile.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise HarnessError(f"{name} did not become healthy in 60 s")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise HarnessError("no VmRSS")

    def post(self, path: str, body: dict, token: str | None = None) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"JWT {token}"
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        return conn.getresponse().read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()


def daphne(env: dict, logdir: Path, name: str) -> Server:
    # A long handshake timeout: a thousand sockets authenticating at once on a
    # busy machine take longer than daphne's default 5 s.
    cmd = [DAPHNE, "-v", "0", "--websocket_connect_timeout", "300", "-b", "127.0.0.1", "-p", "{port}", APP]
    return Server(cmd, env, logdir, f"daphne-{name}")


def peer_server(env: dict, logdir: Path, name: str) -> Server:
    from django.conf import settings

    from chat.tokens import signing_key

    # The peer checks the same access tokens as the project: the same key and issuer.
    peer_env = {**env, "JWT_SECRET": signing_key(), "JWT_ISSUER": settings.JWT_ISSUER, "NODE_ENV": "production"}
    server = Server([NODE, str(PEER_DIR / "server.js")], peer_env, logdir, f"peer-{name}")
    server.graphql_path = "/graphql"
    return server


# --- Senders -----------------------------------------------------------------------


class Sender:
    """Posts messages through the ``sendMessage`` mutation over one keep-alive
    HTTP connection, and remembers what it sent and how long each send took."""

    def __init__(self, server: Server, token: str, room_gid: str):
        self.server = server
        self.token = token
        self.room_gid = room_gid
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.sent: list[str] = []
        self.round_trips: dict[str, list[float]] = {}

    def send(self, text: str) -> None:
        headers = {"Authorization": f"JWT {self.token}", "Content-Type": "application/json"}
        variables = {"roomId": self.room_gid, "text": text, "clientId": None}
        body = json.dumps({"query": SEND_MESSAGE, "variables": variables})
        start = time.monotonic()
        self.conn.request("POST", self.server.graphql_path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200 or b'"errors"' in data:
            raise HarnessError(f"send failed: {response.status} {data[:300]!r}")
        tag = text.split()[1] if text.startswith("bench ") else "warm"
        self.round_trips.setdefault(tag, []).append(time.monotonic() - start)
        self.sent.append(text)


# --- Load clients --------------------------------------------------------------------


class Subscribers:
    """WebSocket subscribers spread over a few client processes.

    ``conns``: [{"token", "room" (a key for the results), "room_gid", "path"}]."""

    def __init__(self, ctx: Context, kind: str, conns: list[dict], ports: list[int], per_process: int = 600):
        self.ctx = ctx
        self.conns = conns
        self.procs = []
        self.outs = []
        self.errors = 0
        nproc = max(1, math.ceil(len(conns) / per_process))
        for i in range(nproc):
            chunk = conns[i::nproc]
            port = ports[i % len(ports)]
            spec = {
                "url": f"ws://127.0.0.1:{port}",
                "kind": "baseline" if kind == "baseline" else "graphql",
                "query": ROOM_EVENTS,
                "conns": [
                    {"token": c["token"], "path": c["path"], "variables": {"roomId": c["room_gid"]}} for c in chunk
                ],
                "connect_concurrency": 20,
            }
            spec_path = ctx.tmp / f"spec-{id(self)}-{i}.json"
            out_path = ctx.tmp / f"out-{id(self)}-{i}.json"
            spec_path.write_text(json.dumps(spec))
            proc = subprocess.Popen(
                [PY, "-m", "bench.client", str(spec_path), str(out_path)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.procs.append((proc, chunk))
            self.outs.append(out_path)
        failed = 0
        for proc, _ in self.procs:
            line = proc.stdout.readline().split()
            if not line or line[0] != "CONNECTED":
                self.kill()
                raise HarnessError(f"client process failed to connect: {line}")
            failed += int(line[2])
        if failed:
            self.kill()
            raise HarnessError(f"{failed} of {len(conns)} sockets failed to connect")

    def count(self) -> tuple[int, int]:
        frames = warm = 0
        for proc, _ in self.procs:
            proc.stdin.write("COUNT\n")
            proc.stdin.flush()
            _, f, w = proc.stdout.readline().split()
            frames += int(f)
            warm += int(w)
        return frames, warm

    def warm_up(self, senders: dict, timeout: float = 90) -> float:
        """Send ``warm`` messages to every room until every socket has seen one:
        after that, every subscription is live."""
        start = time.monotonic()
        rounds = 0
        while time.monotonic() - start < timeout:
            for room, sender in senders.items():
                sender.send(f"warm {rounds} {room}")
            rounds += 1
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                time.sleep(0.1)
                if self.count()[1] == len(self.conns):
                    return time.monotonic() - start
        raise HarnessError(f"warm-up: only {self.count()[1]} of {len(self.conns)} sockets live after {timeout} s")

    def drain(self, expected: int, quiet: float = 5.0, limit: float = 180.0) -> int:
        start = last_change = time.monotonic()
        last = -1
        while True:
            frames, _ = self.count()
            now = time.monotonic()
            if frames >= expected or now - last_change > quiet or now - start > limit:
                return frames
            if frames != last:
                last, last_change = frames, now
            time.sleep(0.2)

    def stop(self) -> list[dict]:
        """Per socket: {"room": key, "received": [(label, t_recv), ...]}."""
        results = []
        for (proc, chunk), out in zip(self.procs, self.outs, strict=False):
            proc.stdin.write("STOP\n")
            proc.stdin.flush()
            proc.stdout.readline()
            proc.wait(60)
            data = json.loads(out.read_text())
            self.errors += data["errors"]
            results.extend(
                {"room": c["room"], "received": received} for c, received in zip(chunk, data["received"], strict=False)
            )
        if self.errors:
            log(f"  !! {self.errors} error frames received (see stderr)")
        return results

    def kill(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --- Redis commands -------------------------------------------------------------------

MONITOR_LINE = re.compile(r'^\+\d+\.\d+ \[(\d+) ([^\]]+)\] "([^"]+)"(?: "((?:[^"\\]|\\.)*)")?')
# Random channel names and numbers in keys, so that keys of one kind count together.
KEY_NOISE = re.compile(r"[0-9A-Za-z]*\d[0-9A-Za-z]*")


def command_label(command: str, key: str | None) -> str:
    """``ZADD chat:group:room.#``: the command and the shape of its key (scripts by name only)."""
    command = command.upper()
    if key is None or command in ("EVAL", "EVALSHA", "SELECT", "MULTI", "EXEC", "PING", "CLIENT", "HELLO"):
        return command
    return f"{command} {KEY_NOISE.sub('#', key)[:48]}"


class RedisMonitor:
    """Counts the commands Redis executes in one database (``MONITOR``, filtered
    by db number: the machine's Redis is shared, the bench's database is not).
    Commands that Lua scripts run (channels-redis' ``EVAL``s) are counted apart."""

    def __init__(self, url: str):
        parsed = urlparse(url)
        self.db = (parsed.path or "/0").lstrip("/") or "0"
        self.sock = socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=5)
        if parsed.password:
            self.sock.sendall(f"AUTH {parsed.password}\r\n".encode())
        self.sock.sendall(b"MONITOR\r\n")
        self.sock.settimeout(0.5)
        self.client: Counter = Counter()
        self.scripted: Counter = Counter()
        self.counting = False
        self.stopped = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer = b""
        while not self.stopped:
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\r\n")
            if not self.counting:
                continue
            for raw in lines:
                match = MONITOR_LINE.match(raw.decode(errors="replace"))
                if match and match.group(1) == self.db:
                    label = command_label(match.group(3), match.group(4))
                    (self.scripted if match.group(2) == "lua" else self.client)[label] += 1

    def start(self) -> None:
        self.client.clear()
        self.scripted.clear()
        self.started = time.monotonic()
        self.counting = True

    def pause(self) -> tuple[Counter, Counter, float]:
        """The counts since ``start`` and the seconds they cover."""
        self.counting = False
        return Counter(self.client), Counter(self.scripted), time.monotonic() - self.started

    def close(self) -> None:
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


# --- Measuring -----------------------------------------------------------------------


def send_at_rate(sender: Sender, tag: str, count: int, rate: float) -> None:
    start = time.monotonic()
    for k in range(count):
        target = start + k / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sender.send(f"bench {tag} {k} {time.monotonic():.6f}")


def send_sequentially(sender: Sender, tag: str, count: int) -> None:
    """Saturation: each message sent as soon as the previous one is acknowledged."""
    for k in range(count):
        sender.send(f"bench {tag} {k} {time.monotonic():.6f}")


def in_threads(run, n: int) -> None:
    """``run(i)`` for i in 0..n-1, each in a thread; the first error is raised once all are done."""
    errors: list = []

    def guarded(i: int) -> None:
        try:
            run(i)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def send_round_robin(senders: dict, tag: str, seconds: float, threads: int = 2) -> int:
    """Each thread cycles over its share of the rooms, as fast as it goes, for ``seconds``."""
    stop_at = time.monotonic() + seconds
    rooms = list(senders)
    sent = [0] * threads

    def run(i: int) -> None:
        mine = rooms[i::threads]
        while time.monotonic() < stop_at:
            senders[mine[sent[i] % len(mine)]].send(f"bench {tag} {i}-{sent[i]} {time.monotonic():.6f}")
            sent[i] += 1

    in_threads(run, threads)
    return sum(sent)


def expected_messages(kind: str, rooms: dict, tag: str) -> dict:
    """Per room key, the texts every subscriber of that room must receive once.
    The project and the floor: the messages stored in the database (whatever a
    sender believed). The peer has no database: what its senders sent."""
    prefix = f"bench {tag} "
    if kind == "peer":
        return {key: {t for t in sender.sent if t.startswith(prefix)} for key, sender in rooms.items()}
    from chat.models import Message

    return {
        key: set(Message.objects.filter(room_id=key, text__startswith=prefix).values_list("text", flat=True))
        for key in rooms
    }


def deliveries(results: list[dict], tag: str, by_room: dict) -> dict:
    """Latency and rate of the messages tagged ``tag``; loss and duplicates
    against ``by_room`` (see ``expected_messages``)."""
    latencies = []
    first_send = math.inf
    last_recv = 0.0
    missing = duplicates = extra = total = 0
    for r in results:
        expected = by_room[r["room"]]
        seen = []
        for label, t_recv in r["received"]:
            parts = label.split()
            if parts[1] != tag:
                continue
            seen.append(label)
            t_send = float(parts[3])
            latencies.append(t_recv - t_send)
            first_send = min(first_send, t_send)
            last_recv = max(last_recv, t_recv)
        total += len(seen)
        unique = set(seen)
        duplicates += len(seen) - len(unique)
        missing += len(expected - unique)
        extra += len(unique - expected)
    span = last_recv - first_send if latencies else float("nan")
    return {
        "messages": sum(len(v) for v in by_room.values()),
        "deliveries": total,
        "expected": sum(len(by_room[r["room"]]) for r in results),
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": extra,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else float("nan"),
        "deliveries_per_s": total / span if latencies and span > 0 else float("nan"),
    }


def lossless(stats: dict) -> bool:
    return stats["missing"] == 0 and stats["duplicates"] == 0 and stats["unexpected"] == 0


def mean_ms(senders, tag: str) -> float:
    times = [t for s in senders for t in s.round_trips.get(tag, [])]
    return sum(times) / len(times) * 1000 if times else float("nan")


# --- Context: the database, the users, the rooms ------------------------------------


class Context:
    def __init__(self, mode: str, quick: bool, tmp: Path, env: dict):
        self.mode = mode
        self.quick = quick
        self.tmp = tmp
        self.env = env
        self.logdir = tmp
        self.users: list = []
        self.tokens: dict[int, str] = {}
        self.room_counter = 0
        self.peer_skipped = peer_missing()
        self.profile: str | None = None  # --profile: the name of the profiles to write
        self.peer: Server | None = None  # the peer shared by the fan-out scenarios

    @staticmethod
    def gid(type_name: str, pk) -> str:
        from strawberry.relay import to_base64

        return to_base64(type_name, pk)

    def ensure_users(self, n: int) -> list:
        from chat.models import User
        from chat.tokens import create_access_token

        if len(self.users) < n:
            start = len(self.users)
            User.objects.bulk_create(
                [
                    User(username=f"bench{i}", email=f"bench{i}@example.com", password="!", display_name=f"B {i}")
                    for i in range(start, n)
                ],
                batch_size=1000,
            )
            self.users = list(User.objects.filter(username__startswith="bench").order_by("id"))
            for user in self.users[start:]:
                self.tokens[user.pk] = create_access_token(user)[0]
        return self.users[:n]

    def make_room(self, members: list, history: int = 0) -> int:
        from chat.models import Membership, Message, Room

        self.room_counter += 1
        room = Room.objects.create(name=f"bench room {self.room_counter}", created_by=members[0])
        Membership.objects.bulk_create(
            [
                Membership(room=room, user=u, role=Membership.Role.OWNER if i == 0 else Membership.Role.MEMBER)
                for i, u in enumerate(members)
            ],
            batch_size=1000,
        )
        if history:
            Message.objects.bulk_create(
                [Message(room=room, sender=members[i % len(members)], text=f"history {i}") for i in range(history)],
                batch_size=1000,
            )
        return room.pk

    def make_peer_room(self, peer: Server, members: list) -> str:
        """The same room on the peer, created through its ``createRoom`` mutation by the first member."""
        self.room_counter += 1
        variables = {"name": f"bench room {self.room_counter}", "memberIds": [self.gid("User", u.pk) for u in members]}
        answer = json.loads(
            peer.post(peer.graphql_path, {"query": CREATE_ROOM, "variables": variables}, self.tokens[members[0].pk])
        )
        if answer.get("errors"):
            raise HarnessError(f"peer createRoom: {answer['errors']}")
        return answer["data"]["createRoom"]["id"]

    def server(self, name: str, **extra_env) -> Server:
        return daphne({**self.env, **extra_env}, self.logdir, name)

    def peer_server(self, name: str) -> Server:
        return peer_server(self.env, self.logdir, name)

    def kinds(self, peer: bool = True) -> list[str]:
        kinds = ["graphql", "baseline"] + (["peer"] if peer and not self.peer_skipped else [])
        if os.environ.get("BENCH_SIDES"):  # e.g. BENCH_SIDES=project to profile the project alone
            wanted = os.environ["BENCH_SIDES"].split(",")
            kinds = [kind for kind in kinds if LABELS[kind] in wanted]
        return kinds

    def room_for(self, kind: str, members: list, project: Server, peer: Server | None) -> dict:
        """A room with these members (the first sends) on the side ``kind``:
        {"key", "gid", "path", "sender_server"}."""
        if kind == "peer":
            gid = self.make_peer_room(peer, members)
            return {"key": gid, "gid": gid, "path": peer.graphql_path, "sender_server": peer}
        pk = self.make_room(members)
        path = "/graphql/" if kind == "graphql" else f"/bench/ws/{pk}/"
        return {"key": pk, "gid": self.gid("Room", pk), "path": path, "sender_server": project}


# --- Scenarios -----------------------------------------------------------------------


def fanout_side(
    ctx: Context,
    kind: str,
    servers: list[Server],
    n: int,
    rate: float,
    rate_count: int,
    burst: int,
    monitor: RedisMonitor | None = None,
    idle_s: float = 0,
):
    """One room of ``n`` subscribers spread over ``servers``: latency at a fixed
    rate, then a saturating sender (the next message as soon as the previous is
    acknowledged). With ``monitor``, the Redis commands of the saturation phase,
    and first those of ``idle_s`` seconds without events (the periodic work)."""
    users = ctx.ensure_users(n + 1)
    sender_user, subscribers = users[0], users[1:]
    room = ctx.room_for(kind, [sender_user, *subscribers], servers[0], servers[0])
    conns = [
        {"token": ctx.tokens[u.pk], "room": room["key"], "room_gid": room["gid"], "path": room["path"]}
        for u in subscribers
    ]
    subs = Subscribers(ctx, kind, conns, [s.port for s in servers])
    redis = None
    try:
        sender = Sender(room["sender_server"], ctx.tokens[sender_user.pk], room["gid"])
        warm = subs.warm_up({room["key"]: sender})
        base = subs.count()[0]
        if rate_count:
            send_at_rate(sender, "rate", rate_count, rate)
            subs.drain(base + rate_count * n)
            base = subs.count()[0]
        idle = None
        if monitor:
            time.sleep(0.5)  # let the rate phase's stragglers settle out of the count
            if idle_s:
                monitor.start()
                time.sleep(idle_s)
                idle = dict(zip(("client", "scripted", "seconds"), monitor.pause(), strict=True))
            monitor.start()
        send_sequentially(sender, "burst", burst)
        subs.drain(base + burst * n)
        if monitor:
            client, scripted, seconds = monitor.pause()
            redis = {
                "events": burst,
                "processes": len(servers),
                "seconds": seconds,
                "client": client,
                "scripted": scripted,
                "idle": idle,
            }
        results = subs.stop()
    finally:
        subs.kill()
    rooms = {room["key"]: sender}
    side = {"n": n, "warm_up_s": warm, "errors": subs.errors}
    if rate_count:
        side["rate"] = deliveries(results, "rate", expected_messages(kind, rooms, "rate"))
    side["burst"] = deliveries(results, "burst", expected_messages(kind, rooms, "burst"))
    side["burst"]["send_ms"] = mean_ms([sender], "burst")
    if side["burst"]["deliveries"] == 0:
        raise HarnessError(f"{kind}: nothing delivered")
    if redis:
        side["redis"] = redis
    return side


def with_side_server(ctx: Context, kind: str, project: Server):
    """The server a side's subscribers use: the shared daphne, or the shared peer."""
    if kind != "peer":
        return project
    if ctx.peer is None:
        ctx.peer = ctx.peer_server("shared")
    return ctx.peer


def scenario_fanout(ctx: Context, server: Server) -> list[dict]:
    # (N, msgs/s and messages of the latency phase, messages of the saturation phase)
    # Saturation phases of thousands of deliveries per side: p99 is then a tail of the phase, not
    # its first messages' warm-up, and one run's ratios hold on a noisy 2-core machine.
    plans = [(20, 20, 10, 10)] if ctx.quick else [(200, 10, 20, 200), (1000, 2, 6, 100)]
    if os.environ.get("BENCH_FANOUT_N"):  # e.g. 1000 to profile one size; 1,50 to see how the cost grows
        planned = {plan[0]: plan for plan in plans}
        sizes = [int(n) for n in os.environ["BENCH_FANOUT_N"].split(",")]
        plans = [planned.get(n, (n, 10, 20, 200)) for n in sizes]
    if os.environ.get("BENCH_FANOUT_BURST"):  # e.g. 3000: a saturation phase long enough to profile
        plans = [(*plan[:3], int(os.environ["BENCH_FANOUT_BURST"])) for plan in plans]
    rows = []
    for n, rate, rate_count, burst in plans:
        row = {"n": n, "rate_msgs_per_s": rate, "burst": burst}
        for kind in ctx.kinds():
            log(f"  fan-out N={n} {LABELS[kind]} ...")
            row[kind] = fanout_side(ctx, kind, [with_side_server(ctx, kind, server)], n, rate, rate_count, burst)
        rows.append(row)
        print_fanout_row(ctx, row)
    return rows


def scenario_rooms(ctx: Context, server: Server) -> dict:
    rooms, per_room, seconds = (5, 5, 2) if ctx.quick else (100, 10, 10)
    row = {"rooms": rooms, "per_room": per_room}
    users = ctx.ensure_users(rooms * per_room + 1)
    sender_user = users[0]
    for kind in ctx.kinds():
        log(f"  many rooms {rooms}x{per_room} {LABELS[kind]} ...")
        side_server = with_side_server(ctx, kind, server)
        made = [
            ctx.room_for(kind, [sender_user, *users[1 + i * per_room : 1 + (i + 1) * per_room]], server, side_server)
            for i in range(rooms)
        ]
        conns = [
            {"token": ctx.tokens[u.pk], "room": made[i]["key"], "room_gid": made[i]["gid"], "path": made[i]["path"]}
            for i in range(rooms)
            for u in users[1 + i * per_room : 1 + (i + 1) * per_room]
        ]
        subs = Subscribers(ctx, kind, conns, [side_server.port])
        try:
            senders = {r["key"]: Sender(r["sender_server"], ctx.tokens[sender_user.pk], r["gid"]) for r in made}
            subs.warm_up(senders)
            base = subs.count()[0]
            sent = send_round_robin(senders, "rooms", seconds)
            subs.drain(base + sent * per_room)
            results = subs.stop()
        finally:
            subs.kill()
        stats = deliveries(results, "rooms", expected_messages(kind, senders, "rooms"))
        stats["errors"] = subs.errors
        row[kind] = stats
    print_rooms_row(ctx, row)
    return row


def memory_report_request() -> dict:
    """What the memory profile reports: allocations grouped by ``filename`` (default)
    or by ``lineno`` (``BENCH_MEMORY_GROUP``)."""
    return {"action": "stop", "lines": 200, "group": os.environ.get("BENCH_MEMORY_GROUP", "filename")}


def scenario_memory(ctx: Context) -> list[dict]:
    sizes = [50] if ctx.quick else [int(c) for c in os.environ.get("BENCH_MEMORY_C", "1000,2000").split(",")]
    per_room = 500
    rows = []
    for c in sizes:
        row = {"connections": c}
        users = ctx.ensure_users(c + 1)
        sender_user = users[0]
        chunks = [users[1 + i : 1 + i + per_room] for i in range(0, c, per_room)]
        for kind in ctx.kinds():
            log(f"  idle memory C={c} {LABELS[kind]} ...")
            # A fresh server per side: its memory before and after the sockets.
            server = ctx.peer_server(f"memory-{c}") if kind == "peer" else ctx.server(f"memory-{kind}")
            try:
                made = [ctx.room_for(kind, [sender_user, *chunk], server, server) for chunk in chunks]
                conns = [
                    {"token": ctx.tokens[u.pk], "room": r["key"], "room_gid": r["gid"], "path": r["path"]}
                    for r, chunk in zip(made, chunks, strict=False)
                    for u in chunk
                ]
                time.sleep(0.5 if ctx.quick else 1.0)
                traced = ctx.profile and kind != "peer"
                if traced:
                    server.post("/bench/memory/", {"action": "start"})
                before = server.rss_kb()
                subs = Subscribers(ctx, kind, conns, [server.port], per_process=1300)
                try:
                    senders = {r["key"]: Sender(server, ctx.tokens[sender_user.pk], r["gid"]) for r in made}
                    subs.warm_up(senders, timeout=180)
                    time.sleep(0.5 if ctx.quick else 2.0)
                    after = server.rss_kb()
                    if traced:
                        name = f"{ctx.profile}-memory-{c}-{kind}-{ctx.mode}.txt"
                        (RESULTS / name).write_text(server.post("/bench/memory/", memory_report_request()))
                        log(f"  allocations held by the sockets written to bench/results/{name}")
                    subs.stop()
                finally:
                    subs.kill()
            finally:
                server.stop()
            row[kind] = {
                "rss_before_mb": before / 1024,
                "rss_after_mb": after / 1024,
                "kb_per_conn": (after - before) / c,
            }
        rows.append(row)
        print_memory_row(ctx, row)
    return rows


def history_sql_counts(ctx: Context, room: int, user) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(headers={"Authorization": f"JWT {ctx.tokens[user.pk]}"})
    counts = {}
    for first in (10, 50):
        with CaptureQueriesContext(connection) as plain:
            response = client.get(f"/bench/messages/{room}/?first={first}")
            assert response.status_code == 200, response.content
        counts[f"baseline_first_{first}"] = len(plain)
        body = {"query": MESSAGES, "variables": {"roomId": ctx.gid("Room", room), "first": first}}
        with CaptureQueriesContext(connection) as gql:
            response = client.post("/graphql/", json.dumps(body), content_type="application/json")
            assert response.status_code == 200 and "errors" not in response.json(), response.content
        counts[f"graphql_first_{first}"] = len(gql)
    return counts


def scenario_history(ctx: Context, server: Server) -> dict:
    seconds, threads = (2, 4) if ctx.quick else (10, 8)
    users = ctx.ensure_users(20)
    room = ctx.make_room(users[:20], history=500)
    row = {"first": 50, "threads": threads, "seconds": seconds, "sql": history_sql_counts(ctx, room, users[1])}
    body = json.dumps({"query": MESSAGES, "variables": {"roomId": ctx.gid("Room", room), "first": 50}})
    sides = {
        "graphql": {"method": "POST", "path": "/graphql/", "body": body},
        "baseline": {"method": "GET", "path": f"/bench/messages/{room}/?first=50", "body": None},
    }
    for kind, request in sides.items():
        log(f"  history {LABELS[kind]} ...")
        sender = Sender(server, ctx.tokens[users[0].pk], ctx.gid("Room", room))
        stop = threading.Event()

        def send_slowly(sender=sender, stop=stop, kind=kind) -> None:
            k = 0
            while not stop.wait(0.2):  # 5 messages per second meanwhile
                sender.send(f"bench hist-{kind} {k} {time.monotonic():.6f}")
                k += 1

        background = threading.Thread(target=send_slowly)
        background.start()
        spec = {
            "port": server.port,
            "threads": threads,
            "seconds": seconds,
            "token": ctx.tokens[users[1].pk],
            **request,
        }
        spec_path, out_path = ctx.tmp / f"http-{kind}.json", ctx.tmp / f"http-{kind}-out.json"
        spec_path.write_text(json.dumps(spec))
        try:
            subprocess.run([PY, "-m", "bench.httpload", str(spec_path), str(out_path)], cwd=ROOT, check=True)
        finally:
            stop.set()
            background.join()
        data = json.loads(out_path.read_text())
        if data["errors"] or not data["latencies"]:
            raise HarnessError(f"history {kind}: {data['errors']} errors, sample {data['sample']}")
        row[kind] = {
            "requests": len(data["latencies"]),
            "rps": len(data["latencies"]) / data["elapsed"],
            "p50_ms": pct(data["latencies"], 50) * 1000,
            "p99_ms": pct(data["latencies"], 99) * 1000,
        }
    print_history_row(ctx, row)
    return row


def scenario_scaleout(ctx: Context) -> dict:
    n, burst = (100, 10) if ctx.quick else (1000, 20)
    row = {"n": n, "burst": burst}
    for kind in ctx.kinds(peer=False):  # the peer's pub/sub lives in one process
        row[kind] = {}
        for processes in (1, 2):
            log(f"  scale-out {LABELS[kind]} with {processes} process(es) ...")
            servers = [ctx.server(f"scale{processes}-{i}") for i in range(processes)]
            try:
                side = fanout_side(ctx, kind, servers, n, 0, 0, burst)
            finally:
                for s in servers:
                    s.stop()
            row[kind][f"{processes}p"] = side["burst"]
    print_scaleout_row(ctx, row)
    return row


def scenario_redis(ctx: Context) -> list[dict]:
    """Redis commands per event, over two daphne processes, at two room sizes."""
    sizes, burst = ([20], 10) if ctx.quick else ([100, 1000], 20)
    # Periodic work (presence heartbeats, repair checks) is measured apart over a quiet
    # window at least one heartbeat long, and taken out of the per-event figure.
    idle_s = float(os.environ.get("BENCH_REDIS_IDLE", "0" if ctx.quick else "31"))
    rows = []
    monitor = RedisMonitor(SERVICES_REDIS)
    try:
        for n in sizes:
            row = {"n": n, "burst": burst}
            for kind in ctx.kinds(peer=False):
                log(f"  Redis commands N={n} {LABELS[kind]} over 2 processes ...")
                servers = [ctx.server(f"redis{n}-{i}") for i in range(2)]
                try:
                    side = fanout_side(ctx, kind, servers, n, 0, 0, burst, monitor=monitor, idle_s=idle_s)
                finally:
                    for s in servers:
                        s.stop()
                redis = side["redis"]
                per = redis["events"] * redis["processes"]
                row[kind] = {
                    "loss": side["burst"],
                    "seconds": redis["seconds"],
                    "commands_per_s": (sum(redis["client"].values()) + sum(redis["scripted"].values()))
                    / redis["seconds"],
                    "client_per_event_process": sum(redis["client"].values()) / per,
                    "scripted_per_event_process": sum(redis["scripted"].values()) / per,
                    "client": {k: v / per for k, v in redis["client"].most_common()},
                    "scripted": {k: v / per for k, v in redis["scripted"].most_common()},
                }
                total = row[kind]["client_per_event_process"] + row[kind]["scripted_per_event_process"]
                row[kind]["total_per_event_process"] = total
                idle = redis["idle"]
                if idle:
                    idle_count = sum(idle["client"].values()) + sum(idle["scripted"].values())
                    row[kind]["idle_per_s"] = idle_count / idle["seconds"]
                    idle_rates = {k: v / idle["seconds"] for k, v in (idle["client"] + idle["scripted"]).items()}
                    row[kind]["idle"] = {
                        k: v / redis["processes"] for k, v in sorted(idle_rates.items(), key=lambda kv: -kv[1])
                    }
                    # Per command and key: what the quiet window's rate explains of the event window
                    # comes out, never more than was there. Periodic work comes in bursts (a heartbeat
                    # every 30 s), so an event window may hold none of it while the quiet one held one.
                    window = redis["client"] + redis["scripted"]
                    row[kind]["per_event_process"] = (
                        sum(
                            max(0.0, count - idle_rates.get(label, 0.0) * redis["seconds"])
                            for label, count in window.items()
                        )
                        / per
                    )
                else:
                    row[kind]["idle_per_s"] = float("nan")
                    row[kind]["per_event_process"] = total
            rows.append(row)
            print_redis_row(ctx, row)
    finally:
        monitor.close()
    return rows


def scenario_layers(ctx: Context) -> list[dict]:
    """channels-redis' layers and capacities under one burst into one large room."""
    n, burst = 200, 150  # 150 messages queue up per channel: above the default capacity of 100
    rows = []
    for name, extra in (
        ("RedisChannelLayer capacity 100", {"CHANNEL_LAYER": "redis", "CHANNEL_LAYER_CAPACITY": "100"}),
        ("RedisChannelLayer capacity 5000", {"CHANNEL_LAYER": "redis", "CHANNEL_LAYER_CAPACITY": "5000"}),
        ("RedisPubSubChannelLayer", {"CHANNEL_LAYER": "pubsub"}),
    ):
        row = {"layer": name}
        for kind in ["baseline"]:  # the layer's behaviour, without the subscription's cost on top
            log(f"  layer {name} {LABELS[kind]} ...")
            server = ctx.server("layer", **extra)
            try:
                row[kind] = fanout_side(ctx, kind, [server], n, 0, 0, burst)["burst"]
            finally:
                server.stop()
        rows.append(row)
    print_layers(rows)
    return rows


# --- Tables ----------------------------------------------------------------------------


def fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if v is None:
        return "-"
    return str(v)


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header, *[[fmt(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    log(f"\n{title}")
    for i, r in enumerate(cells):
        log("  " + " | ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=False))))
        if i == 0:
            log("  " + "-+-".join("-" * w for w in widths))


def judge(ctx: Context, key: str, value: float, where: str = "") -> str:
    """The verdict on target ``key`` for ``value``; recorded for the summary."""
    what, against, op, target = TARGETS[key]
    rel = f"x {LABELS[against]}" if against else ""
    if ctx.quick:  # the targets are for the full sizes; a quick run only shows that every side works
        return f"{rel} {op} {target}: not judged (quick)".strip()
    if math.isnan(value):
        verdict = f"{rel} {op} {target}: -".strip()
    else:
        ok = value >= target if op == ">=" else value <= target
        verdict = f"{rel} {op} {target}: {'ok' if ok else 'MISSED'}".strip()
        ctx.verdicts.append(
            {"target": f"{what}{where}", "want": f"{rel} {op} {target}".strip(), "value": value, "ok": ok}
        )
    return verdict


def judge_loss(ctx: Context, label: str, stats: dict | None) -> None:
    if stats is not None:
        ok = lossless(stats)
        ctx.verdicts.append(
            {"target": f"zero loss and duplicates: {label}", "want": "none", "value": loss_text(stats), "ok": ok}
        )


def _dig(d, path: str):
    for part in path.split("."):
        if d is None:
            return None
        d = d.get(part)
    return d


def three_way(ctx: Context, row: dict, metrics: list[tuple]) -> list[list]:
    """Rows ``metric | project | floor | peer | x floor | x peer | targets``.
    ``metrics``: (label, path in each side, [target keys])."""
    out = []
    for label, path, keys in metrics:
        values = {kind: _dig(row.get(kind), path) for kind in SIDES}
        ratios = {kind: ratio(values["graphql"], values[kind]) for kind in ("baseline", "peer")}
        verdicts = [judge(ctx, key, ratios[TARGETS[key][1]], f" (N={row['n']})" if "n" in row else "") for key in keys]
        out.append(
            [
                label,
                values["graphql"],
                values["baseline"],
                values["peer"],
                ratios["baseline"],
                ratios["peer"],
                "; ".join(verdicts),
            ]
        )
    return out


HEAD = ["metric", "project", "floor", "peer", "x floor", "x peer", "target"]


def loss_text(stats: dict | None) -> str:
    if stats is None:
        return "-"
    return (
        "none"
        if lossless(stats)
        else f"missing {stats['missing']} dup {stats['duplicates']} extra {stats['unexpected']}"
    )


def loss_row(ctx: Context, label: str, row: dict, path: str | None) -> list:
    cells = [label]
    for kind in SIDES:
        stats = _dig(row.get(kind), path) if path else row.get(kind)
        cells.append(loss_text(stats))
        if kind == "graphql":
            judge_loss(ctx, label, stats)
    return [*cells, "", "", ""]


def print_fanout_row(ctx: Context, row: dict) -> None:
    n = row["n"]
    rate_keys = {1000: ["fanout_rate_1000_peer", "fanout_rate_1000_floor"], 200: ["fanout_rate_200_peer"]}.get(n, [])
    rows = three_way(
        ctx,
        row,
        [
            (f"deliveries/s, saturating sender ({row['burst']} msgs)", "burst.deliveries_per_s", rate_keys),
            ("  p50 ms", "burst.p50_ms", []),
            ("  p99 ms", "burst.p99_ms", ["fanout_p99_peer"] if n in (200, 1000) else []),
            ("  sendMessage round trip ms", "burst.send_ms", []),
            (f"latency p50 ms at {row['rate_msgs_per_s']} msg/s", "rate.p50_ms", []),
            (f"latency p99 ms at {row['rate_msgs_per_s']} msg/s", "rate.p99_ms", []),
        ],
    )
    rows.append(loss_row(ctx, f"loss, fan-out N={n}, fixed rate", row, "rate"))
    rows.append(loss_row(ctx, f"loss, fan-out N={n}, saturation", row, "burst"))
    table(f"Fan-out: one room, N={n} subscribers{peer_note(ctx)}", HEAD, rows)


def print_rooms_row(ctx: Context, row: dict) -> None:
    rows = three_way(
        ctx, row, [("deliveries/s", "deliveries_per_s", []), ("p50 ms", "p50_ms", []), ("p99 ms", "p99_ms", [])]
    )
    rows.append(loss_row(ctx, "loss, many rooms", row, None))
    table(
        f"Many rooms: {row['rooms'] * row['per_room']} connections over {row['rooms']} rooms{peer_note(ctx)}",
        HEAD,
        rows,
    )


def print_memory_row(ctx: Context, row: dict) -> None:
    rows = three_way(
        ctx,
        row,
        [
            ("RSS before MB", "rss_before_mb", []),
            ("RSS after MB", "rss_after_mb", []),
            ("KB per subscribed socket", "kb_per_conn", ["memory_per_conn"]),
        ],
    )
    table(f"Idle memory: C={row['connections']} subscribed sockets{peer_note(ctx)}", HEAD, rows)


def print_history_row(ctx: Context, row: dict) -> None:
    rows = []
    for label, path, key in (
        ("requests/s", "rps", "history_rps"),
        ("p50 ms", "p50_ms", None),
        ("p99 ms", "p99_ms", None),
    ):
        g, b = row["graphql"][path], row["baseline"][path]
        rows.append([label, g, b, ratio(g, b), judge(ctx, key, ratio(g, b)) if key else ""])
    sql = row["sql"]
    for first in (10, 50):
        rows.append(
            [f"SQL queries, first={first}", sql[f"graphql_first_{first}"], sql[f"baseline_first_{first}"], "", ""]
        )
    table(
        f"History: messages(first: 50), {row['threads']} clients, a sender at 5 msg/s",
        ["metric", "project", "plain view", "x view", "target"],
        rows,
    )


def print_scaleout_row(ctx: Context, row: dict) -> None:
    rows = []
    for kind in ("graphql", "baseline"):
        if kind not in row:
            continue
        one, two = row[kind]["1p"], row[kind]["2p"]
        r = ratio(two["deliveries_per_s"], one["deliveries_per_s"])
        rows.append(
            [
                LABELS[kind],
                one["deliveries_per_s"],
                two["deliveries_per_s"],
                r,
                judge(ctx, "scaleout", r, f" ({LABELS[kind]})") if kind == "graphql" else "",
            ]
        )
        rows.append([f"{LABELS[kind]} loss", loss_text(one), loss_text(two), "", ""])
        if kind == "graphql":
            judge_loss(ctx, "scale-out, 1 process", one)
            judge_loss(ctx, "scale-out, 2 processes", two)
    table(
        f"Scale-out: N={row['n']} subscribers, saturating sender ({row['burst']} msgs); no peer (one process)",
        ["side", "1 process del/s", "2 processes del/s", "ratio", "target"],
        rows,
    )


def print_redis_row(ctx: Context, row: dict) -> None:
    rows = []
    lists = []
    for kind in ("graphql", "baseline"):
        side = row.get(kind)
        if side is None:
            continue
        net = side["per_event_process"]
        verdict = judge(ctx, "redis_per_event", net, f" (N={row['n']})") if kind == "graphql" else ""
        rows.append(
            [
                LABELS[kind],
                net,
                side["total_per_event_process"],
                side["client_per_event_process"],
                side["scripted_per_event_process"],
                side["seconds"],
                side["idle_per_s"],
                verdict,
            ]
        )
        for where in ("client", "scripted"):
            names = ", ".join(f"{name} {v:.2f}" for name, v in side[where].items()) or "none"
            lists.append(
                f"  {LABELS[kind]}, per event, {'sent by clients' if where == 'client' else 'in Lua'}: {names}"
            )
        if "idle" in side:
            names = ", ".join(f"{name} {v:.2f}" for name, v in side["idle"].items()) or "none"
            lists.append(f"  {LABELS[kind]}, per second without events: {names}")
        if kind == "graphql":
            judge_loss(ctx, f"Redis scenario N={row['n']}", side["loss"])
    table(
        f"Redis commands per event per process: N={row['n']} over 2 processes, {row['burst']} events",
        ["side", "per event", "raw", "by clients", "in Lua", "window s", "idle cmd/s", "target"],
        rows,
    )
    log("  per event = raw less, per command and key, the quiet window's rate over the event window; per process")
    log("  (the floor's events come from the project's sendMessage too):")
    for line in lists:
        log(line)


def print_layers(rows: list[dict]) -> None:
    out = []
    for row in rows:
        s = row["baseline"]
        out.append([row["layer"], s["deliveries_per_s"], s["p50_ms"], s["p99_ms"], loss_text(s)])
    title = "Channel layers (floor consumers): one room of 200, a saturating sender of 150 messages"
    table(title, ["layer", "del/s", "p50 ms", "p99 ms", "loss"], out)


def peer_note(ctx: Context) -> str:
    return f" (peer skipped: {ctx.peer_skipped})" if ctx.peer_skipped else ""


def print_verdicts(ctx: Context) -> None:
    rows = [[v["target"], v["want"], v["value"], "ok" if v["ok"] else "MISSED"] for v in ctx.verdicts]
    table(f"Targets, mode {ctx.mode}", ["target", "wanted", "value", "verdict"], rows)


# --- Driving a mode --------------------------------------------------------------------


def mode_env(mode: str, tmp: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CHANNEL_LAYER", "CHANNEL_LAYER_CAPACITY", "BENCH_CHANNEL_LAYER")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        JWT_EXPIRATION="7200",
        MAX_USERS_IN_ROOM="100000",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    if mode == "embedded":
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    else:
        env["DATABASE_URL"] = SERVICES_DB
        env["REDIS_URL"] = SERVICES_REDIS
    return env


def reset_services() -> None:
    import psycopg2
    import redis

    dsn = SERVICES_DB.rsplit("/", 1)
    name = dsn[1]
    conn = psycopg2.connect(dsn[0] + "/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    redis.Redis.from_url(SERVICES_REDIS).flushdb()


SERVICES_ONLY = ("scaleout", "layers", "redis")


def child(mode: str, quick: bool, scenarios: list[str], out_path: Path, profile: str | None) -> int:
    tmp = Path(os.environ["BENCH_TMP"])
    if mode == "services":
        reset_services()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    env = dict(os.environ)
    ctx = Context(mode, quick, tmp, env)
    ctx.profile = profile
    ctx.verdicts = []
    result = {
        "mode": mode,
        "quick": quick,
        "machine": machine(),
        "commit": commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sender": "sendMessage mutation, each message sent when the previous is acknowledged",
        "channel_layer": "in-memory" if mode == "embedded" else "RedisChannelLayer",
        "peer": f"skipped: {ctx.peer_skipped}" if ctx.peer_skipped else "node " + node_version(),
        "presence_broadcast": os.environ.get("BENCH_PRESENCE") == "1",
        "scenarios": {},
        "broken": [],
    }
    log(f"\n=== mode {mode} ({result['machine']}, commit {result['commit']}, peer: {result['peer']})")
    shared = None
    try:
        for name in scenarios:
            if name in SERVICES_ONLY and mode != "services":
                continue
            t0 = time.monotonic()
            try:
                if name in ("fanout", "rooms", "history") and shared is None:
                    shared = ctx.server("shared")
                if name == "fanout":
                    if profile:
                        shared.post("/bench/profile/", {"action": "start"})
                    result["scenarios"]["fanout"] = scenario_fanout(ctx, shared)
                    if profile:
                        text = shared.post(
                            "/bench/profile/", {"action": "stop", "path": str(RESULTS / f"{profile}-{mode}.pstats")}
                        )
                        (RESULTS / f"{profile}-{mode}.txt").write_text(text)
                        log(f"  profile written to bench/results/{profile}-{mode}.txt")
                elif name == "rooms":
                    result["scenarios"]["rooms"] = scenario_rooms(ctx, shared)
                elif name == "memory":
                    result["scenarios"]["memory"] = scenario_memory(ctx)
                elif name == "history":
                    result["scenarios"]["history"] = scenario_history(ctx, shared)
                elif name == "scaleout":
                    result["scenarios"]["scaleout"] = scenario_scaleout(ctx)
                elif name == "redis":
                    result["scenarios"]["redis"] = scenario_redis(ctx)
                elif name == "layers":
                    result["scenarios"]["layers"] = scenario_layers(ctx)
                else:
                    raise HarnessError(f"unknown scenario {name!r}")
            except Exception as error:  # noqa: BLE001 - one broken scenario must not hide the others
                traceback.print_exc()
                result["broken"].append(f"{name}: {error}")
            log(f"  ({name}: {time.monotonic() - t0:.1f} s)")
    finally:
        if shared is not None:
            shared.stop()
        if ctx.peer is not None:
            ctx.peer.stop()
    print_verdicts(ctx)
    result["targets"] = ctx.verdicts
    out_path.write_text(json.dumps(result, indent=1))
    return 1 if result["broken"] else 0


def node_version() -> str:
    try:
        return subprocess.check_output([NODE, "--version"], text=True).strip()
    except (OSError, subprocess.CalledProcessError, TypeError):
        return "unknown"


# --- Summary and chart ----------------------------------------------------------------------


def chart(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for res in results:
        sc, mode = res["scenarios"], res["mode"]
        for row in sc.get("fanout", []):
            panels.append((f"{mode}: fan-out N={row['n']}\ndeliveries/s", row, "burst.deliveries_per_s"))
            panels.append((f"{mode}: fan-out N={row['n']}\np99 ms at saturation", row, "burst.p99_ms"))
        if "rooms" in sc:
            panels.append((f"{mode}: many rooms\ndeliveries/s", sc["rooms"], "deliveries_per_s"))
        for row in sc.get("memory", []):
            panels.append((f"{mode}: idle C={row['connections']}\nKB per socket", row, "kb_per_conn"))
        if "history" in sc:
            panels.append((f"{mode}: history\nrequests/s", sc["history"], "rps"))
        for row in sc.get("redis", []):
            panels.append((f"{mode}: Redis N={row['n']}\ncommands/event/process", row, "per_event_process"))
    if not panels:
        return
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (title, row, metric) in zip(axes.flat, panels, strict=False):
        kinds = [k for k in SIDES if isinstance(row.get(k), dict)]
        values = [_dig(row[k], metric) or 0 for k in kinds]
        ax.bar([LABELS[k] for k in kinds], values, color=["#4c72b0", "#999999", "#55a868"][: len(kinds)])
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    stamp = f"{results[0]['machine']} · commit {results[0]['commit']}"
    fig.suptitle(f"Chat backend vs bare Channels floor and Node peer ({stamp})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--modes", default=None, help="embedded,services (quick: embedded)")
    parser.add_argument("--scenarios", default=None, help="fanout,rooms,memory,history,scaleout,redis,layers")
    parser.add_argument(
        "--profile",
        default=None,
        help="cProfile the server during fan-out, trace allocations during idle memory; name of the output",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    all_scenarios = ["fanout", "rooms", "memory", "history", "scaleout", "redis"] + ([] if args.quick else ["layers"])
    scenarios = args.scenarios.split(",") if args.scenarios else all_scenarios
    if args.child:
        return child(args.child, args.quick, scenarios, Path(args.out), args.profile)

    modes = (args.modes or ("embedded" if args.quick else "embedded,services")).split(",")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    status = 0
    results = []
    started = time.monotonic()
    for mode in modes:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-{mode}-"))
        out = tmp / "result.json"
        env = mode_env(mode, tmp)
        env["BENCH_TMP"] = str(tmp)
        cmd = [PY, "-m", "bench.run", "--child", mode, "--out", str(out), "--scenarios", ",".join(scenarios)]
        if args.quick:
            cmd.append("--quick")
        if args.profile:
            cmd += ["--profile", args.profile]
        code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        if out.exists():
            results.append(json.loads(out.read_text()))
        status = status or code or (0 if out.exists() else 1)
        if code == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"  (server logs kept in {tmp})")
    if results:
        json_path = RESULTS / f"bench-{stamp}.json"
        json_path.write_text(json.dumps(results, indent=1))
        (RESULTS / "latest.json").write_text(json.dumps(results, indent=1))
        chart(results, RESULTS / f"bench-{stamp}.png")
        if (RESULTS / f"bench-{stamp}.png").exists():
            shutil.copyfile(RESULTS / f"bench-{stamp}.png", RESULTS / "latest.png")
        log(f"\nresults: {json_path.relative_to(ROOT)} and .png ({time.monotonic() - started:.0f} s)")
    for res in results:
        for broken in res["broken"]:
            log(f"BROKEN ({res['mode']}): {broken}")
    return status


if __name__ == "__main__":
    sys.exit(main())
