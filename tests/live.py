"""Live daphne processes for tests where the real server matters (close codes
daphne refuses to send, slow readers, faults, several processes)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
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
