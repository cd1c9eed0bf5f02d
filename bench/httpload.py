"""HTTP load client: a few keep-alive connections in threads, for the history scenario.

    python -m bench.httpload SPEC.json OUT.json

SPEC: {"port": 8000, "threads": 8, "seconds": 10, "method": "GET" | "POST", "path": "...",
       "body": "..." | null, "token": "..."}
OUT: {"latencies": [...seconds], "errors": n, "elapsed": seconds, "sample": "first body"}
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time


def worker(spec: dict, deadline: float, latencies: list, errors: list, sample: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", spec["port"], timeout=60)
    headers = {"Authorization": f"JWT {spec['token']}", "Content-Type": "application/json"}
    body = spec.get("body")
    while time.monotonic() < deadline:
        start = time.monotonic()
        try:
            conn.request(spec["method"], spec["path"], body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            errors.append(1)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", spec["port"], timeout=60)
            continue
        latencies.append(time.monotonic() - start)
        if response.status != 200 or b'"errors"' in data:
            errors.append(1)
            if len(sample) < 2:
                sample.append(data[:500].decode(errors="replace"))
        elif not sample:
            sample.append(data[:300].decode(errors="replace"))


def main(spec_path: str, out_path: str) -> None:
    spec = json.load(open(spec_path))
    latencies: list = []
    errors: list = []
    sample: list = []
    start = time.monotonic()
    deadline = start + spec["seconds"]
    threads = [
        threading.Thread(target=worker, args=(spec, deadline, latencies, errors, sample))
        for _ in range(spec["threads"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    json.dump(
        {"latencies": latencies, "errors": len(errors), "elapsed": elapsed, "sample": sample}, open(out_path, "w")
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
