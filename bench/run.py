"""The benchmark harness: ``python -m bench.run [--quick] [--modes embedded,services]``.

For each mode the harness re-runs itself as a child process with that mode's
environment (embedded: a temporary SQLite file and the in-memory layer;
services: Postgres database ``bench`` and Redis db 5, both recreated), prepares
users and rooms through the ORM, starts daphne subprocesses on free ports
(``bench.asgi``: the real app plus the baseline), and drives them with load
clients in separate processes (``bench.client``, ``bench.httpload``). Each
scenario runs the GraphQL path and the baseline with the same sender, prints a
table with the ratio, and checks every delivery against the database.

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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
DAPHNE = str(Path(PY).parent / "daphne")
APP = "bench.asgi:application"
SERVICES_DB = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench")
SERVICES_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")

# Targets, as ratios GraphQL / baseline (see issue 8).
TARGETS = {
    "fanout_rate": (">=", 0.8),
    "fanout_p99": ("<=", 1.25),
    "memory_per_conn": ("<=", 1.2),
    "history_rps": (">=", 0.7),
    "scaleout": (">=", 1.6),
}

# --- Operations (the contract in DESIGN.md) -----------------------------------------

ROOM_EVENTS = """subscription RoomEvents($roomId: ID!) {
  roomEvents(roomId: $roomId) {
    __typename
    ... on MessageAdded { cursor message { id text createdAt sender { id username } } }
  }
}"""

SEND_MESSAGE = """mutation SendMessage($roomId: ID!, $text: String!, $clientId: String) {
  sendMessage(input: {roomId: $roomId, text: $text, clientId: $clientId}) { __typename }
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


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


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


class HarnessError(RuntimeError):
    pass


# --- Servers -----------------------------------------------------------------------


class Server:
    """One daphne process serving ``bench.asgi:application``."""

    def __init__(self, env: dict, logdir: Path, name: str):
        self.port = free_port()
        self.logfile = open(logdir / f"daphne-{name}-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            # A long handshake timeout: a thousand sockets authenticating at once on a
            # busy machine take longer than daphne's default 5 s.
            [DAPHNE, "-v", "0", "--websocket_connect_timeout", "300", "-b", "127.0.0.1", "-p", str(self.port), APP],
            cwd=ROOT,
            env=env,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"daphne exited with {self.proc.returncode}, see {self.logfile.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise HarnessError("daphne did not become healthy in 60 s")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise HarnessError("no VmRSS")

    def post(self, path: str, body: dict) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
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


# --- Senders -----------------------------------------------------------------------


class Sender:
    """Posts messages through the real ``sendMessage`` mutation (or, before it
    exists, the bench publisher) over one keep-alive HTTP connection."""

    def __init__(self, ctx: Context, server: Server, token: str, room_pk: int):
        self.ctx = ctx
        self.server = server
        self.token = token
        self.room_pk = room_pk
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.count = 0

    def send(self, text: str) -> None:
        headers = {"Authorization": f"JWT {self.token}", "Content-Type": "application/json"}
        if self.ctx.has_send_message:
            path = "/graphql/"
            variables = {"roomId": self.ctx.room_gid(self.room_pk), "text": text, "clientId": None}
            body = json.dumps({"query": SEND_MESSAGE, "variables": variables})
        else:
            path, body = f"/bench/publish/{self.room_pk}/", json.dumps({"text": text})
        self.conn.request("POST", path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200 or b'"errors"' in data or b'"error"' in data:
            raise HarnessError(f"send failed: {response.status} {data[:300]!r}")
        self.count += 1


# --- Load clients --------------------------------------------------------------------


class Subscribers:
    """WebSocket subscribers spread over a few client processes."""

    def __init__(self, ctx: Context, kind: str, conns: list[dict], ports: list[int], per_process: int = 600):
        self.ctx = ctx
        self.conns = conns
        self.procs = []
        self.outs = []
        nproc = max(1, math.ceil(len(conns) / per_process))
        for i in range(nproc):
            chunk = conns[i::nproc]
            port = ports[i % len(ports)]
            spec = {
                "url": f"ws://127.0.0.1:{port}",
                "kind": kind,
                "query": ROOM_EVENTS,
                "conns": [
                    {"token": c["token"], "room": c["room"], "variables": {"roomId": ctx.room_gid(c["room"])}}
                    for c in chunk
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

    def warm_up(self, senders: dict[int, Sender], timeout: float = 90) -> float:
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
        """Per socket: {"room": pk, "received": [(label, t_recv), ...]}."""
        results = []
        errors = 0
        for (proc, chunk), out in zip(self.procs, self.outs, strict=False):
            proc.stdin.write("STOP\n")
            proc.stdin.flush()
            proc.stdout.readline()
            proc.wait(60)
            data = json.loads(out.read_text())
            errors += data["errors"]
            results.extend(
                {"room": c["room"], "received": received} for c, received in zip(chunk, data["received"], strict=False)
            )
        if errors:
            log(f"  !! {errors} error frames received (see stderr)")
        self.errors = errors
        return results

    def kill(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --- Measuring -----------------------------------------------------------------------


def send_at_rate(sender: Sender, tag: str, count: int, rate: float) -> None:
    start = time.monotonic()
    for k in range(count):
        target = start + k / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
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


def send_burst(senders: list[Sender], tag: str, count: int) -> None:
    """``count`` messages as fast as the senders go, spread over them (threads)."""

    def run(i: int) -> None:
        for k in range(i, count, len(senders)):
            senders[i].send(f"bench {tag} {k} {time.monotonic():.6f}")

    in_threads(run, len(senders))


def send_round_robin(senders: dict[int, Sender], tag: str, seconds: float, threads: int = 2) -> int:
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


def deliveries(ctx: Context, results: list[dict], tag: str) -> dict:
    """Latency and rate of the messages tagged ``tag``, checked against the
    database: every stored message reaches every socket of its room once."""
    from chat.models import Message

    by_room: dict[int, set[str]] = {}
    for room in {r["room"] for r in results}:
        by_room[room] = set(
            Message.objects.filter(room_id=room, text__startswith=f"bench {tag} ").values_list("text", flat=True)
        )
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
    sent = sum(len(v) for v in by_room.values())
    span = last_recv - first_send if latencies else float("nan")
    return {
        "messages": sent,
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
        from schema import schema

        sdl = schema.as_str()
        self.has_send_message = "sendMessage(" in sdl
        self.has_room_events = "roomEvents(" in sdl
        self.has_messages = "messages(" in sdl

    def room_gid(self, pk: int) -> str:
        if not (self.has_send_message or self.has_room_events or self.has_messages):
            return str(pk)
        from strawberry.relay import to_base64

        return to_base64("Room", pk)

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

    def server(self, name: str, **extra_env) -> Server:
        return Server({**self.env, **extra_env}, self.logdir, name)

    def kinds(self) -> list[str]:
        return ["graphql", "baseline"] if self.has_room_events else ["baseline"]


# --- Scenarios -----------------------------------------------------------------------


def fanout_side(ctx: Context, kind: str, servers: list[Server], n: int, rate: float, rate_count: int, burst: int):
    users = ctx.ensure_users(n + 1)
    sender_user, subscribers = users[0], users[1:]
    room = ctx.make_room([sender_user, *subscribers])
    conns = [{"token": ctx.tokens[u.pk], "room": room} for u in subscribers]
    subs = Subscribers(ctx, kind, conns, [s.port for s in servers])
    try:
        sender = Sender(ctx, servers[0], ctx.tokens[sender_user.pk], room)
        warm = subs.warm_up({room: sender})
        base = subs.count()[0]
        send_at_rate(sender, "rate", rate_count, rate)
        subs.drain(base + rate_count * n)
        base = subs.count()[0]
        burst_senders = [sender, Sender(ctx, servers[0], ctx.tokens[sender_user.pk], room)]
        send_burst(burst_senders, "burst", burst)
        subs.drain(base + burst * n)
        results = subs.stop()
    finally:
        subs.kill()
    rate_stats = deliveries(ctx, results, "rate")
    burst_stats = deliveries(ctx, results, "burst")
    if rate_stats["deliveries"] == 0:
        raise HarnessError(f"{kind}: nothing delivered")
    return {
        "n": n,
        "warm_up_s": warm,
        "rate": rate_stats,
        "burst": burst_stats,
        "errors": subs.errors,
    }


def scenario_fanout(ctx: Context, server: Server) -> list[dict]:
    plans = (
        [(20, 20, 10, 10)]
        if ctx.quick
        else [(100, 10, 30, 60), (1000, 1, 5, 10)]  # (N, msgs/s, messages at that rate, burst size)
    )
    if os.environ.get("BENCH_FANOUT_N"):  # e.g. BENCH_FANOUT_N=1000 to profile one size
        plans = [plan for plan in plans if str(plan[0]) in os.environ["BENCH_FANOUT_N"].split(",")]
    rows = []
    for n, rate, rate_count, burst in plans:
        row = {"n": n, "rate_msgs_per_s": rate}
        for kind in ctx.kinds():
            log(f"  fan-out N={n} {kind} ...")
            row[kind] = fanout_side(ctx, kind, [server], n, rate, rate_count, burst)
        rows.append(row)
        print_fanout_row(row)
    return rows


def scenario_rooms(ctx: Context, server: Server) -> dict:
    rooms, per_room, seconds = (5, 5, 2) if ctx.quick else (100, 10, 10)
    row = {"rooms": rooms, "per_room": per_room}
    for kind in ctx.kinds():
        log(f"  many rooms {rooms}x{per_room} {kind} ...")
        users = ctx.ensure_users(rooms * per_room + 1)
        sender_user = users[0]
        room_pks = [
            ctx.make_room([sender_user, *users[1 + i * per_room : 1 + (i + 1) * per_room]]) for i in range(rooms)
        ]
        conns = [
            {"token": ctx.tokens[u.pk], "room": room_pks[i]}
            for i in range(rooms)
            for u in users[1 + i * per_room : 1 + (i + 1) * per_room]
        ]
        subs = Subscribers(ctx, kind, conns, [server.port])
        try:
            senders = {pk: Sender(ctx, server, ctx.tokens[sender_user.pk], pk) for pk in room_pks}
            subs.warm_up(senders)
            base = subs.count()[0]
            sent = send_round_robin(senders, "rooms", seconds)
            subs.drain(base + sent * per_room)
            results = subs.stop()
        finally:
            subs.kill()
        stats = deliveries(ctx, results, "rooms")
        stats["errors"] = subs.errors
        row[kind] = stats
    print_rooms_row(row)
    return row


def scenario_memory(ctx: Context) -> list[dict]:
    sizes = [50] if ctx.quick else [2000, 5000]
    per_room = 500
    rows = []
    for c in sizes:
        row = {"connections": c}
        users = ctx.ensure_users(c + 1)
        sender_user = users[0]
        for kind in ctx.kinds():
            log(f"  idle memory C={c} {kind} ...")
            chunks = [users[1 + i : 1 + i + per_room] for i in range(0, c, per_room)]
            room_pks = [ctx.make_room([sender_user, *chunk]) for chunk in chunks]
            conns = [
                {"token": ctx.tokens[u.pk], "room": pk}
                for pk, chunk in zip(room_pks, chunks, strict=False)
                for u in chunk
            ]
            server = ctx.server(f"memory-{kind}")
            try:
                time.sleep(1.0)
                before = server.rss_kb()
                subs = Subscribers(ctx, kind, conns, [server.port], per_process=1300)
                try:
                    senders = {pk: Sender(ctx, server, ctx.tokens[sender_user.pk], pk) for pk in room_pks}
                    subs.warm_up(senders, timeout=180)
                    time.sleep(2.0)
                    after = server.rss_kb()
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
        print_memory_row(row)
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
        if ctx.has_messages:
            body = {"query": MESSAGES, "variables": {"roomId": ctx.room_gid(room), "first": first}}
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
    sides = {
        "baseline": {"method": "GET", "path": f"/bench/messages/{room}/?first=50", "body": None},
    }
    if ctx.has_messages:
        body = json.dumps({"query": MESSAGES, "variables": {"roomId": ctx.room_gid(room), "first": 50}})
        sides = {"graphql": {"method": "POST", "path": "/graphql/", "body": body}, **sides}
    for kind, request in sides.items():
        log(f"  history {kind} ...")
        sender = Sender(ctx, server, ctx.tokens[users[0].pk], room)
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
    print_history_row(row)
    return row


def scenario_scaleout(ctx: Context) -> dict:
    n, burst = (100, 10) if ctx.quick else (1000, 10)
    row = {"n": n, "burst": burst}
    for kind in ctx.kinds():
        row[kind] = {}
        for processes in (1, 2):
            log(f"  scale-out {kind} with {processes} process(es) ...")
            servers = [ctx.server(f"scale{processes}-{i}") for i in range(processes)]
            try:
                side = fanout_side(ctx, kind, servers, n, 10, 5, burst)
            finally:
                for s in servers:
                    s.stop()
            row[kind][f"{processes}p"] = side["burst"]
    print_scaleout_row(row)
    return row


def scenario_layers(ctx: Context) -> list[dict]:
    """channels-redis' layers and capacities under one burst into one large room."""
    n, burst = 200, 150  # 150 messages queue up per channel: above the default capacity of 100
    rows = []
    for name, extra in (
        ("RedisChannelLayer capacity 100", {"CHANNEL_LAYER_CAPACITY": "100"}),
        ("RedisChannelLayer capacity 5000", {"CHANNEL_LAYER_CAPACITY": "5000"}),
        ("RedisPubSubChannelLayer", {"BENCH_CHANNEL_LAYER": "pubsub"}),
    ):
        row = {"layer": name}
        for kind in ["baseline"]:  # the layer's behaviour, without the subscription's cost on top
            log(f"  layer {name} {kind} ...")
            server = ctx.server("layer", **extra)
            try:
                row[kind] = fanout_side(ctx, kind, [server], n, 10, 5, burst)["burst"]
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
    return str(v)


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header, *[[fmt(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    log(f"\n{title}")
    for i, r in enumerate(cells):
        log("  " + " | ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=False))))
        if i == 0:
            log("  " + "-+-".join("-" * w for w in widths))


def verdict(key: str, value: float) -> str:
    op, target = TARGETS[key]
    if math.isnan(value):
        return f"{op} {target}: -"
    ok = value >= target if op == ">=" else value <= target
    return f"{op} {target}: {'ok' if ok else 'MISSED'}"


def side_rows(row: dict, metrics: list[tuple[str, str, str | None]]) -> list[list]:
    out = []
    for label, path, target in metrics:
        g = _dig(row.get("graphql"), path)
        b = _dig(row.get("baseline"), path)
        r = ratio(g, b) if g is not None and b is not None else float("nan")
        out.append(
            [label, g if g is not None else "-", b if b is not None else "-", r, verdict(target, r) if target else ""]
        )
    return out


def _dig(d, path: str):
    for part in path.split("."):
        if d is None:
            return None
        d = d.get(part)
    return d


HEAD = ["metric", "graphql", "baseline", "ratio", "target"]


def loss_text(stats: dict | None) -> str:
    if stats is None:
        return "-"
    return (
        "none"
        if lossless(stats)
        else f"missing {stats['missing']} dup {stats['duplicates']} extra {stats['unexpected']}"
    )


def print_fanout_row(row: dict) -> None:
    rows = side_rows(
        row,
        [
            (f"latency p50 ms at {row['rate_msgs_per_s']} msg/s", "rate.p50_ms", None),
            (f"latency p99 ms at {row['rate_msgs_per_s']} msg/s", "rate.p99_ms", "fanout_p99"),
            ("latency max ms", "rate.max_ms", None),
            ("deliveries/s at saturation", "burst.deliveries_per_s", "fanout_rate"),
            ("burst p99 ms", "burst.p99_ms", None),
        ],
    )
    for phase in ("rate", "burst"):
        rows.append(
            [
                f"loss ({phase})",
                loss_text(_dig(row.get("graphql"), phase)),
                loss_text(_dig(row.get("baseline"), phase)),
                "",
                "",
            ]
        )
    table(f"Fan-out: one room, N={row['n']} subscribers", HEAD, rows)


def print_rooms_row(row: dict) -> None:
    rows = side_rows(
        row,
        [("deliveries/s", "deliveries_per_s", None), ("p50 ms", "p50_ms", None), ("p99 ms", "p99_ms", None)],
    )
    rows.append(["loss", loss_text(row.get("graphql")), loss_text(row.get("baseline")), "", ""])
    table(f"Many rooms: {row['rooms'] * row['per_room']} connections over {row['rooms']} rooms", HEAD, rows)


def print_memory_row(row: dict) -> None:
    rows = side_rows(
        row,
        [
            ("RSS before MB", "rss_before_mb", None),
            ("RSS after MB", "rss_after_mb", None),
            ("KB per connection", "kb_per_conn", "memory_per_conn"),
        ],
    )
    table(f"Idle memory: C={row['connections']} subscribed connections", HEAD, rows)


def print_history_row(row: dict) -> None:
    rows = side_rows(
        row,
        [("requests/s", "rps", "history_rps"), ("p50 ms", "p50_ms", None), ("p99 ms", "p99_ms", None)],
    )
    sql = row["sql"]
    for first in (10, 50):
        rows.append(
            [
                f"SQL queries, first={first}",
                sql.get(f"graphql_first_{first}", "-"),
                sql[f"baseline_first_{first}"],
                "",
                "",
            ]
        )
    table(f"History: messages(first: 50), {row['threads']} clients, a sender at 5 msg/s", HEAD, rows)


def print_scaleout_row(row: dict) -> None:
    rows = []
    for kind in ("graphql", "baseline"):
        if kind not in row:
            continue
        one, two = row[kind]["1p"], row[kind]["2p"]
        r = ratio(two["deliveries_per_s"], one["deliveries_per_s"])
        rows.append([kind, one["deliveries_per_s"], two["deliveries_per_s"], r, verdict("scaleout", r)])
        rows.append([f"{kind} loss", loss_text(one), loss_text(two), "", ""])
    table(
        f"Scale-out: N={row['n']} subscribers, burst of {row['burst']}",
        ["side", "1 process del/s", "2 processes del/s", "ratio", "target"],
        rows,
    )


def print_layers(rows: list[dict]) -> None:
    out = []
    for row in rows:
        for kind in ("graphql", "baseline"):
            if kind in row:
                s = row[kind]
                out.append([row["layer"], kind, s["deliveries_per_s"], s["p50_ms"], s["p99_ms"], loss_text(s)])
    title = "Channel layers (baseline consumers): one room of 200, burst of 150"
    table(title, ["layer", "side", "del/s", "p50 ms", "p99 ms", "loss"], out)


# --- Driving a mode --------------------------------------------------------------------


def mode_env(mode: str, tmp: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CHANNEL_LAYER_CAPACITY", "BENCH_CHANNEL_LAYER")
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
    result = {
        "mode": mode,
        "quick": quick,
        "machine": machine(),
        "commit": commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sender": "sendMessage mutation" if ctx.has_send_message else "bench publisher",
        "graphql_side": ctx.has_room_events,
        "channel_layer": "in-memory" if mode == "embedded" else "RedisChannelLayer",
        "presence_broadcast": os.environ.get("BENCH_PRESENCE") == "1",
        "realtime_check_interval_s": os.environ.get("BENCH_CHECK_INTERVAL") or "project default",
        "scenarios": {},
        "broken": [],
    }
    log(f"\n=== mode {mode} ({result['machine']}, commit {result['commit']}, sender: {result['sender']})")
    if not ctx.has_room_events:
        log("  (no roomEvents subscription in the schema yet: baseline side only)")
    shared = None
    try:
        for name in scenarios:
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
                    if mode != "services":
                        continue
                    result["scenarios"]["scaleout"] = scenario_scaleout(ctx)
                elif name == "layers":
                    if mode != "services":
                        continue
                    result["scenarios"]["layers"] = scenario_layers(ctx)
            except Exception as error:  # noqa: BLE001 - one broken scenario must not hide the others
                traceback.print_exc()
                result["broken"].append(f"{name}: {error}")
            log(f"  ({name}: {time.monotonic() - t0:.1f} s)")
    finally:
        if shared is not None:
            shared.stop()
    out_path.write_text(json.dumps(result, indent=1))
    return 1 if result["broken"] else 0


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
            panels.append((f"{mode}: fan-out N={row['n']}\np99 ms at fixed rate", row, "rate.p99_ms"))
        if "rooms" in sc:
            panels.append((f"{mode}: many rooms\ndeliveries/s", sc["rooms"], "deliveries_per_s"))
        for row in sc.get("memory", []):
            panels.append((f"{mode}: idle C={row['connections']}\nKB per connection", row, "kb_per_conn"))
        if "history" in sc:
            panels.append((f"{mode}: history\nrequests/s", sc["history"], "rps"))
        if "scaleout" in sc:
            for kind in ("graphql", "baseline"):
                if kind in sc["scaleout"]:
                    panels.append(
                        (
                            f"{mode}: scale-out {kind}\ndeliveries/s",
                            {"1 proc": sc["scaleout"][kind]["1p"], "2 procs": sc["scaleout"][kind]["2p"]},
                            "deliveries_per_s",
                        )
                    )
    if not panels:
        return
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (title, row, metric) in zip(axes.flat, panels, strict=False):
        labels = [k for k in ("graphql", "baseline", "1 proc", "2 procs") if k in row]
        values = [_dig(row[k], metric) or 0 for k in labels]
        ax.bar(labels, values, color=["#4c72b0", "#999999", "#55a868", "#c44e52"][: len(labels)])
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    stamp = f"{results[0]['machine']} · commit {results[0]['commit']}"
    fig.suptitle(f"Chat backend vs bare Channels floor ({stamp})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--modes", default=None, help="embedded,services (quick: embedded)")
    parser.add_argument("--scenarios", default=None, help="fanout,rooms,memory,history,scaleout,layers")
    parser.add_argument("--profile", default=None, help="cProfile the server during fan-out; name of the output")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    all_scenarios = ["fanout", "rooms", "memory", "history", "scaleout"] + ([] if args.quick else ["layers"])
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
        shutil.copyfile(RESULTS / f"bench-{stamp}.png", RESULTS / "latest.png") if (
            RESULTS / f"bench-{stamp}.png"
        ).exists() else None
        log(f"\nresults: {json_path.relative_to(ROOT)} and .png ({time.monotonic() - started:.0f} s)")
    for res in results:
        for broken in res["broken"]:
            log(f"BROKEN ({res['mode']}): {broken}")
    return status


if __name__ == "__main__":
    sys.exit(main())
