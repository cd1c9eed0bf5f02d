"""OpenTelemetry tracing: switched on by the standard OTEL_* variables only.

Each case runs in a fresh interpreter (tracing is configured when the ASGI
application is imported), with the console exporter: the spans it prints are
what a collector would receive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import asyncio, json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "backend.settings"
from backend.asgi import application
from django.core.management import call_command
from django.test import AsyncClient
from schema import schema

call_command("migrate", verbosity=0)

async def main():
    client = AsyncClient()
    login = 'mutation LogIn { tokenAuth(username: "nobody", password: "secret-in-the-document") { token } }'
    for query in ("query Hello { __typename }", login):
        response = await client.post("/graphql/", json.dumps({"query": query}), content_type="application/json")
        assert response.status_code == 200, response.content

asyncio.run(main())
extensions = [getattr(e, "__name__", type(e).__name__) for e in schema.extensions]
# (redis-py imports the OpenTelemetry API on its own when it is installed.)
tracing = ("opentelemetry.sdk.trace", "opentelemetry.instrumentation", "strawberry.extensions.tracing.opentelemetry")
loaded = sorted(name for name in sys.modules if name.startswith(tracing))
print("RESULT " + json.dumps({"extensions": extensions, "opentelemetry": loaded}), file=sys.stderr)
"""


def run_probe(tmp_path: Path, **otel: str) -> tuple[dict, list[dict]]:
    """(what the probe reports, the spans printed by the console exporter)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJANGO_")) and k != "REDIS_URL"}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", LOG_LEVEL="WARNING", **otel)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(line for line in out.stderr.splitlines() if line.startswith("RESULT "))[7:])
    spans, decoder, text = [], json.JSONDecoder(), out.stdout.strip()
    while text:
        span, end = decoder.raw_decode(text)
        spans.append(span)
        text = text[end:].strip()
    return result, spans


def test_otel_variables_switch_tracing_on(tmp_path):
    result, spans = run_probe(tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="chat-test")
    assert result["extensions"][0] == "GraphQLTracing"
    names = [span["name"] for span in spans]
    for name in ("POST graphql/", "GraphQL Query: Hello", "GraphQL Parsing", "GraphQL Validation"):
        assert name in names, names
    operation = next(span for span in spans if span["name"] == "GraphQL Query: Hello")
    # One trace: Django's request span is the parent of the GraphQL operation's.
    [request] = [span for span in spans if span["context"]["span_id"] == operation["parent_id"]]
    assert request["name"] == "POST graphql/" and request["kind"] == "SpanKind.SERVER"
    assert operation["context"]["trace_id"] == request["context"]["trace_id"]
    assert request["resource"]["attributes"]["service.name"] == "chat-test"
    assert "GraphQL Query: LogIn" in names
    # Neither the document nor argument values (they may hold passwords) reach a span.
    assert "secret-in-the-document" not in json.dumps(spans)


def test_without_otel_variables_nothing_is_traced(tmp_path):
    result, spans = run_probe(tmp_path)
    assert spans == []
    assert "GraphQLTracing" not in result["extensions"]
    assert result["opentelemetry"] == []  # neither the SDK, the instrumentation nor the extension imported


def test_an_exporter_named_none_keeps_it_off(tmp_path):
    result, spans = run_probe(tmp_path, OTEL_TRACES_EXPORTER="none")
    assert (spans, result["opentelemetry"]) == ([], [])
