"""The web chat page's Content-Security-Policy, and its refresh token kept in an
HttpOnly cookie that only the /web/session/ exchange reads (never the API)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from chat.models import RefreshToken
from chat.web_session import COOKIE_NAME

PASSWORD = "correct horse battery"
TOKEN_AUTH = "mutation L($u: String, $p: String) { tokenAuth(username: $u, password: $p) { token refreshToken } }"
ME = "query Me { me { username } }"
REFRESH = "mutation R($t: String) { refreshToken(refreshToken: $t) { token } }"
PAGE = {"X-Chat-Web": "1"}


def graphql(client: Client, query: str, variables: dict | None = None, **headers) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}})
    return client.post("/graphql/", body, content_type="application/json", headers=headers).json()


def web(client: Client, path: str, body: dict | None = None, headers: dict | None = PAGE):
    return client.post(f"/web/session/{path}", json.dumps(body or {}), content_type="application/json", headers=headers)


@pytest.fixture
def signed_in(alice) -> tuple[Client, str, str]:
    """A browser that logged in and handed its refresh token to /web/session/:
    (client, the access token it got back, the refresh token it handed over)."""
    client = Client()
    issued = graphql(client, TOKEN_AUTH, {"u": "alice", "p": PASSWORD})["data"]["tokenAuth"]
    response = web(client, "", {"refreshToken": issued["refreshToken"]})
    assert response.status_code == 200, response.content
    return client, response.json()["token"], issued["refreshToken"]


class TestContentSecurityPolicy:
    def test_the_page_has_a_strict_policy(self, db):
        response = Client().get("/")
        assert response.status_code == 200
        directives = dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";") if d.strip())
        assert directives["default-src"] == "'self'"
        assert directives["object-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert "unsafe-inline" not in response["Content-Security-Policy"]

    def test_the_page_has_no_inline_script_or_style(self, db):
        page = Client().get("/").content.decode()
        assert "<style" not in page and " style=" not in page and " on" not in page.replace(" one", "")
        for script in page.split("<script")[1:]:
            assert " src=" in script.split(">", 1)[0], "inline script"


class TestRefreshCookie:
    def test_the_refresh_token_goes_into_an_httponly_strict_cookie(self, signed_in):
        client, token, handed = signed_in
        cookie = client.cookies[COOKIE_NAME]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/web/session/"
        assert cookie.value != handed  # exchanged at once
        assert graphql(client, ME, Authorization=f"JWT {token}") == {"data": {"me": {"username": "alice"}}}

    def test_the_token_the_page_saw_is_dead_after_the_exchange(self, signed_in):
        client, _, handed = signed_in
        replay = graphql(Client(), REFRESH, {"t": handed})
        assert replay["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        # A replay ends the whole log-in, the cookie's token included (rotation's rule).
        assert web(client, "refresh/").status_code == 401

    def test_refresh_rotates_the_cookie(self, signed_in):
        client, _, _ = signed_in
        before = client.cookies[COOKIE_NAME].value
        response = web(client, "refresh/")
        assert response.status_code == 200 and response.json()["token"]
        assert client.cookies[COOKIE_NAME].value != before

    def test_the_cookie_never_authenticates_an_api_call(self, signed_in):
        client, _, _ = signed_in
        client.cookies[COOKIE_NAME]["path"] = "/"  # even if a browser sent it everywhere
        assert graphql(client, ME) == {"data": {"me": None}}

    @pytest.mark.parametrize(
        "headers",
        [None, {}, {"X-Chat-Web": "1", "Origin": "https://evil.example"}],
        ids=["no header", "empty", "other origin"],
    )
    def test_only_the_page_may_exchange(self, signed_in, headers):
        client, _, _ = signed_in
        before = client.cookies[COOKIE_NAME].value
        response = web(client, "refresh/", headers=headers or {})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "FORBIDDEN"
        assert client.cookies[COOKIE_NAME].value == before

    def test_get_is_not_allowed(self, signed_in):
        client, _, _ = signed_in
        assert client.get("/web/session/refresh/", headers=PAGE).status_code == 405

    def test_without_a_cookie_refresh_is_unauthenticated(self, db):
        response = web(Client(), "refresh/")
        assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHENTICATED"

    def test_log_out_revokes_and_drops_the_cookie(self, signed_in, alice):
        client, _, _ = signed_in
        assert web(client, "logout/").status_code == 204
        assert client.cookies[COOKIE_NAME].value == ""
        assert RefreshToken.objects.filter(user=alice, revoked_at__isnull=True, used_at__isnull=True).count() == 0
        assert web(client, "refresh/").status_code == 401
