"""Live daphne processes for tests where the real server matters (close codes
daphne refuses to send, slow readers, faults, several processes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without its Django, database and Redis settings, plus ``overrides``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL"} and not key.startswith("DJANGO_")
    }
    # A test server stopped at the end of its test drains for a second, not the
    # default ten (the tests of the drain set their own period).
    env["SHUTDOWN_DRAIN_SECONDS"] = "1"
    env.update(overrides)
    return env


def migrate(env: dict[str, str]) -> subprocess.Popen:
    """``manage.py migrate`` for ``env``'s database, started in the background: ``.wait()`` for it."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@dataclass
class Daphne:
    port: int
    process: subprocess.Popen
    log: Path


@contextlib.contextmanager
def daphne(
    env: dict[str, str], log: Path, port: int | None = None, timeout: float = 30, options: Sequence[str] = ()
) -> Iterator[Daphne]:
    """``daphne [options] backend.asgi:application`` on ``port`` (a free one by default) until the block ends.

    Yields once the server accepts connections. Output goes to ``log``: to a
    file, not a pipe, since a pipe nobody reads fills up and blocks the server.
    """
    port = port or free_port()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                *options,
                "backend.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"daphne did not start:\n{log.read_text()}"
                time.sleep(0.1)
        yield Daphne(port, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def migrated_daphne(
    folder: Path, timeout: float = 30, options: Sequence[str] = (), **overrides: str
) -> Iterator[Daphne]:
    """``daphne`` (see above) on a fresh SQLite file in ``folder``, with ``overrides`` in
    its environment and its log in ``folder / "daphne.log"``. The database is migrated
    while daphne starts (both import Django); the block begins once both are done."""
    env = server_env(DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}", **overrides)
    migration = migrate(env)
    with daphne(env, folder / "daphne.log", timeout=timeout, options=options) as server:
        assert migration.wait(timeout=120) == 0, migration.stderr.read().decode()
        yield server


def database_url() -> str:
    """The URL of the test database pytest-django created (the servers share it)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def wait_healthy(server: Daphne, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"daphne on {server.port} exited: {server.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"daphne on {server.port} did not become healthy")


def wait_disconnected(name: str, timeout: float = 5) -> None:
    """Wait until the servers' database sessions are gone (the test database is dropped next)."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [name]
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.1)


class TCPProxy:
    """A TCP proxy on its own thread and event loop, which can take the service "down" and "up"."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> TCPProxy:
        self.thread.start()
        self.up()
        return self

    def up(self) -> None:
        async def listen():
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

        self._run(listen())

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""

        async def stop():
            self.server.close()
            for writer in list(self.connections):
                writer.transport.abort()
            self.connections.clear()

        self._run(stop())

    def close(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _handle(self, client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections.update({client_writer, upstream_writer})

        async def pump(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pump(client_reader, upstream_writer), pump(upstream_reader, client_writer))
        self.connections.difference_update({client_writer, upstream_writer})


def url_with_port(url: str, port: int, path: str | None = None) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    netloc = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
    return urlunsplit((parts.scheme, netloc, path if path is not None else parts.path, "", ""))


@contextlib.contextmanager
def service_proxies() -> Iterator[tuple[TCPProxy, TCPProxy]]:
    """(Postgres proxy, Redis proxy) in front of the test database and the test Redis."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    redis_port = int(os.environ["REDIS_URL"].split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    pg = TCPProxy(database.get("HOST") or "127.0.0.1", int(database.get("PORT") or 5432)).start()
    redis = TCPProxy("127.0.0.1", redis_port).start()
    try:
        yield pg, redis
    finally:
        pg.close()
        redis.close()
        # The sessions the proxies carried end asynchronously: the test database is dropped later.
        wait_disconnected(database["NAME"])


def proxied_env(pg: TCPProxy, redis: TCPProxy, **overrides: str) -> dict[str, str]:
    """``server_env`` for a server that reaches the test database and Redis through the proxies."""
    return server_env(
        DATABASE_URL=url_with_port(database_url(), pg.port),
        REDIS_URL=url_with_port(os.environ["REDIS_URL"], redis.port),
        **overrides,
    )
