"""Security settings: CORS, headers and cookies, and logs without secrets."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.test import Client

from backend.logging import JsonFormatter, RedactingFormatter, redact, redact_value
from tests.chat_world import gid
from tests.clients import token_for

ME = "query Me { me { id } }"
TOKEN_AUTH = "mutation Login($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { token refreshToken } }"
APP = "https://app.example.com"


def preflight(path: str, origin: str, headers: str = "authorization,content-type"):
    return Client().options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


class TestCORS:
    @pytest.fixture(autouse=True)
    def _origins(self, settings):
        settings.CORS_ALLOWED_ORIGINS = [APP]

    def test_preflight_allows_authorization_on_graphql(self, db):
        response = preflight("/graphql/", APP)
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == APP
        assert "authorization" in response["Access-Control-Allow-Headers"].split(", ")
        assert "content-type" in response["Access-Control-Allow-Headers"].split(", ")
        assert "POST" in response["Access-Control-Allow-Methods"]
        assert "Access-Control-Allow-Credentials" not in response  # tokens, never cookies

    def test_preflight_for_the_rest_shim(self, db):
        response = preflight("/api/uploads/", APP)
        assert response["Access-Control-Allow-Origin"] == APP

    def test_actual_request_from_an_allowed_origin(self, db, alice):
        response = Client().post(
            "/graphql/",
            json.dumps({"query": ME}),
            content_type="application/json",
            headers={"Origin": APP, "Authorization": f"JWT {token_for(alice)}"},
        )
        assert response["Access-Control-Allow-Origin"] == APP
        assert response.json() == {"data": {"me": {"id": gid("User", alice.pk)}}}

    def test_other_origins_get_no_cors_headers(self, db):
        for origin in ("https://evil.example.net", "https://app.example.com.evil.net", "null"):
            response = preflight("/graphql/", origin)
            assert "Access-Control-Allow-Origin" not in response, origin

    def test_admin_is_not_cross_origin(self, db):
        assert "Access-Control-Allow-Origin" not in preflight("/admin/login/", APP)


class TestHeadersInDevelopment:
    def test_security_headers(self, db):
        response = Client().post("/graphql/", json.dumps({"query": ME}), content_type="application/json")
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"


PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "ALLOWED_HOSTS": "chat.example.com",
    "DJANGO_SECRET_KEY": "s" * 30 + "-Zq8!x7@w#e$r%t^y&u*i(o)p_a+s=d" + "t" * 20,
}
PROBE = """
import django, json, os
os.environ['DJANGO_SETTINGS_MODULE'] = 'backend.settings'
django.setup()
from django.conf import settings as s
from django.test import Client
c = Client(HTTP_HOST='chat.example.com')
plain = c.get('/healthz')
secure = c.post('/graphql/', json.dumps({'query': '{ __typename }'}), content_type='application/json', secure=True)
print(json.dumps({
    'redirect': [plain.status_code, plain.get('Location')],
    'hsts': secure.get('Strict-Transport-Security'),
    'cookies': [s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY],
    'proxy_header': list(s.SECURE_PROXY_SSL_HEADER),
}))
"""


class TestProduction:
    def test_https_hsts_and_secure_cookies(self):
        base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k != "DATABASE_URL"}
        out = subprocess.run(
            [sys.executable, "-c", PROBE], env={**base, **PRODUCTION}, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        # /healthz stays plain HTTP for load balancers; everything else is redirected.
        assert result["redirect"][0] in (200, 503)
        assert result["hsts"] == "max-age=31536000; includeSubDomains; preload"
        assert result["cookies"] == [True, True, True]
        assert result["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwidHlwZSI6ImFjY2VzcyJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


class TestRedaction:
    @pytest.mark.parametrize(
        ("text", "secret"),
        [
            ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop"),
            ("headers={'authorization': 'JWT abc.def.ghi'}", "abc.def.ghi"),
            ('{"password": "correct horse battery"}', "correct horse battery"),
            ('{"variables": {"newPassword": "s3cret pass", "x": 1}}', "s3cret pass"),
            ('tokenAuth(username: "a", password: "hunter2hunter2")', "hunter2hunter2"),
            ('refreshToken(refreshToken: "r-0123456789abcdef")', "r-0123456789abcdef"),
            ('{"refreshToken":"opaque-refresh-value"}', "opaque-refresh-value"),
            ("GET /graphql/?token=abcdef0123456789 HTTP/1.1", "abcdef0123456789"),
            (f"decoded {JWT} badly", JWT),
            ("password=letmein&user=x", "letmein"),
        ],
    )
    def test_secrets_removed(self, text, secret):
        redacted = redact(text)
        assert secret not in redacted
        assert "[REDACTED]" in redacted
        assert redact(redacted) == redacted

    def test_harmless_text_unchanged(self):
        for text in ("tokenAuth succeeded for user 5", "password reset requested", "POST /graphql/ 200"):
            assert redact(text) == text

    def test_structured_values_redacted_by_key(self):
        value = {"password": "x", "nested": [{"refreshToken": "y"}], "token": None, "text": f"t {JWT}", "n": 3}
        assert redact_value(value) == {
            "password": "[REDACTED]",
            "nested": [{"refreshToken": "[REDACTED]"}],
            "token": None,
            "text": "t [REDACTED]",
            "n": 3,
        }

    def test_tracebacks_redacted(self):
        try:
            raise ValueError('bad input {"password": "in-an-exception"}')
        except ValueError:
            record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
        assert "in-an-exception" not in RedactingFormatter().format(record)
        assert "in-an-exception" not in JsonFormatter().format(record)


@pytest.fixture
def log_lines():
    """What the configured ``chat.request`` and root handlers write, as text."""
    stream = io.StringIO()
    handlers = [*logging.getLogger("chat.request").handlers, *logging.getLogger().handlers]
    saved = [(h, h.stream) for h in handlers if isinstance(h, logging.StreamHandler)]
    for handler, _ in saved:
        handler.setStream(stream)
    yield stream
    for handler, old in saved:
        handler.setStream(old)


class TestRequestLogs:
    def test_one_json_line_per_request_with_user_operation_duration_status(self, db, alice, log_lines):
        Client().post(
            "/graphql/",
            json.dumps({"query": ME, "operationName": "Me"}),
            content_type="application/json",
            headers={"Authorization": f"JWT {token_for(alice)}"},
        )
        lines = [json.loads(line) for line in log_lines.getvalue().splitlines() if '"logger": "chat.request"' in line]
        assert len(lines) == 1
        entry = lines[0]
        assert entry["event"] == "request" and entry["method"] == "POST" and entry["path"] == "/graphql/"
        assert entry["status"] == 200 and entry["user_id"] == alice.pk and entry["operation"] == "Me"
        assert entry["operations"] == [
            {"name": "Me", "type": "query", "duration_ms": entry["operations"][0]["duration_ms"], "error_codes": None}
        ]
        assert isinstance(entry["duration_ms"], float)

    def test_no_password_or_token_in_any_log(self, db, alice, log_lines):
        client = Client()
        body = client.post(
            "/graphql/",
            json.dumps({"query": TOKEN_AUTH, "variables": {"u": "alice", "p": "correct horse battery"}}),
            content_type="application/json",
        ).json()
        tokens = body["data"]["tokenAuth"]
        inline = 'mutation { tokenAuth(username: "alice", password: "wrong but secret 42") { token } }'
        client.post("/graphql/", json.dumps({"query": inline}), content_type="application/json")
        client.post(
            "/graphql/?token=" + tokens["token"],
            "{broken",
            content_type="application/json",
            headers={"Authorization": f"JWT {tokens['token']}"},
        )
        output = log_lines.getvalue()
        assert '"logger": "chat.request"' in output
        for secret in ("correct horse battery", "wrong but secret 42", tokens["token"], tokens["refreshToken"]):
            assert secret not in output

    def test_failed_operations_carry_their_codes(self, db, log_lines):
        Client().post("/graphql/", json.dumps({"query": "query Bad { nope }"}), content_type="application/json")
        entry = next(json.loads(x) for x in log_lines.getvalue().splitlines() if '"chat.request"' in x)
        assert entry["operation"] == "Bad"
        assert entry["operations"][0]["error_codes"] == ["GRAPHQL_VALIDATION_FAILED"]
