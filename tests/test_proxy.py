"""The deployed proxy for real: nginx running the repository's deploy/nginx.conf
(only its upstream and listen address changed) in front of a live daphne started
with the Dockerfile's own options. A client cannot choose the address that the
per-address limits count: a forged X-Forwarded-For or X-Real-IP changes nothing.

nginx comes from the system (`apt-get install nginx`; CI installs it). Without
it the test is skipped, unless REQUIRE_NGINX is set (CI sets it), then it fails.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import ROOT, free_port, migrated_daphne

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
if NGINX is None:
    if os.environ.get("REQUIRE_NGINX"):
        raise RuntimeError("nginx is required (REQUIRE_NGINX is set) but not installed")
    pytest.skip("nginx is not installed (apt-get install nginx)", allow_module_level=True)

TOKEN_AUTH = "mutation L($u: String, $p: String) { tokenAuth(username: $u, password: $p) { token } }"
ADDRESS_ATTEMPTS = 3


def dockerfile_daphne_options() -> list[str]:
    """The daphne options of the Dockerfile's CMD, without its bind address and port."""
    match = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), flags=re.M)
    command = json.loads(match.group(1))
    assert command[0] == "daphne" and command[-1] == "backend.asgi:application", command
    options, args = [], iter(command[1:-1])
    for arg in args:
        if arg in ("-b", "-p"):
            next(args)
        else:
            options.append(arg)
    return options


def site_config(upstream_port: int, listen_port: int) -> str:
    """deploy/nginx.conf with the upstream pointing at the test's daphne and the
    listen address at a free local port; everything else as deployed."""
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    config, upstreams = re.subn(
        r"upstream chat_app \{.*?\}",
        f"upstream chat_app {{\n    server 127.0.0.1:{upstream_port};\n    keepalive 4;\n}}",
        config,
        flags=re.S,
    )
    config, listens = re.subn(r"listen 80 default_server;", f"listen 127.0.0.1:{listen_port};", config)
    assert (upstreams, listens) == (1, 1), "deploy/nginx.conf changed shape: adapt this test"
    return config


@contextlib.contextmanager
def nginx(folder: Path, upstream_port: int) -> Iterator[int]:
    port = free_port()
    (folder / "site.conf").write_text(site_config(upstream_port, port))
    temp_paths = "\n".join(
        f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # The main configuration docker's nginx image would provide: one worker, no daemon,
    # everything inside the test's folder; the site file is included as it is deployed.
    (folder / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"""worker_processes 1;
daemon off;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp_paths}
    include {folder / "site.conf"};
}}
"""
    )
    process = subprocess.Popen(
        [NGINX, "-p", f"{folder}/", "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory) -> Iterator[tuple[int, Path]]:
    """(nginx's port, daphne's log) for the deployed pair."""
    folder = tmp_path_factory.mktemp("proxy")
    with migrated_daphne(
        folder,
        timeout=60,
        options=dockerfile_daphne_options(),
        LOGIN_THROTTLE_ADDRESS_ATTEMPTS=str(ADDRESS_ATTEMPTS),
        LOGIN_THROTTLE_ATTEMPTS="1000",
        LOG_LEVEL="INFO",
    ) as server:
        with nginx(folder, server.port) as port:
            yield port, server.log


def log_in(port: int, source: str, n: int, headers: dict[str, str]) -> str:
    """A failed log-in through nginx from the local address ``source``; the error code."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    body = json.dumps({"query": TOKEN_AUTH, "variables": {"u": f"ghost{n}", "p": "wrong"}})
    connection.request("POST", "/graphql/", body, {"Content-Type": "application/json", **headers})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    answer = json.loads(response.read())
    connection.close()
    return answer["errors"][0]["extensions"]["code"]


def test_a_forged_forwarded_for_does_not_change_the_address_limits_see(proxied):
    port, log = proxied
    forged = [
        {"X-Forwarded-For": f"198.51.100.{n}"}
        if n % 2
        else {"X-Real-IP": f"203.0.113.{n}", "X-Forwarded-For": "10.0.0.1"}
        for n in range(ADDRESS_ATTEMPTS + 2)
    ]
    codes = [log_in(port, "127.0.0.3", n, headers) for n, headers in enumerate(forged)]
    # One budget for the real client whatever it claims: refused once it is used up.
    assert codes == ["BAD_USER_INPUT"] * ADDRESS_ATTEMPTS + ["RATE_LIMITED"] * 2
    # Another client behind the same nginx has its own budget: daphne sees the
    # client's address, not nginx's.
    assert log_in(port, "127.0.0.4", 99, {"X-Forwarded-For": "127.0.0.3"}) == "BAD_USER_INPUT"
    clients = [
        json.loads(line).get("client")
        for line in log.read_text().splitlines()
        if line.startswith("{") and '"event": "request"' in line
    ]
    assert clients[-(ADDRESS_ATTEMPTS + 3) :] == ["127.0.0.3"] * (ADDRESS_ATTEMPTS + 2) + ["127.0.0.4"]
