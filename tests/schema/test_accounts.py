"""Accounts and JWT auth over HTTP, as a client sees them (the django-graphql-jwt contract)."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from chat import tokens
from chat.models import Message, RefreshToken, Room, User
from chat.services import accounts
from tests.clients import GraphQLClient, without_request_id

AUTH_FIELDS = "token refreshToken payload refreshExpiresIn user { id username displayName email }"

REGISTER = f"""
mutation Register($input: RegisterInput!) {{
  register(input: $input) {{ {AUTH_FIELDS} }}
}}"""
TOKEN_AUTH = f"""
mutation TokenAuth($username: String!, $password: String!) {{
  tokenAuth(username: $username, password: $password) {{ {AUTH_FIELDS} }}
}}"""
TOKEN_AUTH_LOOSE = f"""
mutation TokenAuth($username: String, $password: String) {{
  tokenAuth(username: $username, password: $password) {{ {AUTH_FIELDS} }}
}}"""
VERIFY_TOKEN = "mutation Verify($token: String!) { verifyToken(token: $token) { payload user { username } } }"
REFRESH_TOKEN = f"""
mutation Refresh($refreshToken: String!) {{
  refreshToken(refreshToken: $refreshToken) {{ {AUTH_FIELDS} }}
}}"""
REVOKE_TOKEN = "mutation Revoke($refreshToken: String!) { revokeToken(refreshToken: $refreshToken) { revoked } }"
REVOKE_ALL_TOKENS = "mutation RevokeAll { revokeAllTokens { revoked } }"
CHANGE_PASSWORD = f"""
mutation ChangePassword($old: String, $new: String) {{
  changePassword(oldPassword: $old, newPassword: $new) {{ {AUTH_FIELDS} }}
}}"""
UPDATE_PROFILE = """
mutation UpdateProfile($input: UpdateProfileInput!) {
  updateProfile(input: $input) { id username displayName bio email }
}"""
DELETE_ACCOUNT = "mutation DeleteAccount($password: String) { deleteAccount(password: $password) { deletedId } }"
ME = "query Me { me { username } }"

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase 7"


def code(body: dict) -> str:
    assert body.get("data") is None or all(v is None for v in (body.get("data") or {}).values()), body
    return body["errors"][0]["extensions"]["code"]


def register(gql, **fields) -> dict:
    payload = {"username": "carol", "email": "carol@example.com", "password": PASSWORD, "displayName": "Carol"}
    payload.update(fields)
    return gql(REGISTER, {"input": payload})


def login(gql, username="alice", password=PASSWORD, **kwargs) -> dict:
    return gql(TOKEN_AUTH, {"username": username, "password": password}, **kwargs)


def from_address(address: str) -> GraphQLClient:
    """A client whose requests come from ``address`` (``REMOTE_ADDR``)."""
    return GraphQLClient(Client(REMOTE_ADDR=address))


def signed(payload: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key or tokens.signing_key(), algorithm=algorithm)


def claims(user: User, **overrides) -> dict:
    now = int(timezone.now().timestamp())
    base = {
        "sub": str(user.pk),
        "username": user.username,
        "iat": now,
        "exp": now + 300,
        "jti": "j1",
        "type": "access",
        "ver": user.token_version,
        "iss": settings.JWT_ISSUER,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


class TestRegister:
    def test_register_signs_the_new_user_in(self, gql):
        body = register(gql)
        data = body["data"]["register"]
        user = User.objects.get(username="carol")
        assert data["user"]["username"] == "carol"
        assert data["user"]["displayName"] == "Carol"
        assert data["user"]["email"] == "carol@example.com"
        assert data["payload"]["sub"] == str(user.pk)
        assert data["payload"]["type"] == "access"
        assert tokens.user_for_access_token(data["token"]) == user
        assert RefreshToken.objects.filter(user=user).count() == 1
        assert data["refreshExpiresIn"] == int(RefreshToken.objects.get(user=user).expires_at.timestamp())
        assert user.password.startswith("argon2$")
        assert gql(ME, token=data["token"]) == {"data": {"me": {"username": "carol"}}}

    @pytest.mark.parametrize(
        ("fields", "errors"),
        [
            (
                {"password": "short"},
                {"password": ["This password is too short. It must contain at least 8 characters."]},
            ),
            ({"password": "password123"}, {"password": ["This password is too common."]}),
            ({"password": "carol@example.com"}, {"password": ["The password is too similar to the email address."]}),
            ({"username": "ALICE"}, {"username": ["A user with that username already exists."]}),
            ({"email": "Alice@EXAMPLE.com"}, {"email": ["A user with that email address already exists."]}),
            ({"email": "not-an-email"}, {"email": ["Enter a valid email address."]}),
            ({"username": "bad name!"}, {"username": [User.username_validator.message]}),
            ({"username": "a@b"}, {"username": ["Usernames may contain only letters, digits and . + - _"]}),
            ({"username": "x" * 151}, {"username": ["Ensure this value has at most 150 characters."]}),
            ({"displayName": "d" * 65}, {"displayName": ["Ensure this value has at most 64 characters."]}),
            ({"username": "   "}, {"username": ["This field is required."]}),
            (
                {"username": None, "email": "", "password": None},
                {
                    "username": ["This field is required."],
                    "email": ["This field is required."],
                    "password": ["This field is required."],
                },
            ),
        ],
    )
    def test_bad_input_is_typed_and_creates_nothing(self, gql, alice, fields, errors):
        before = User.objects.count()
        body = register(gql, **fields)
        assert code(body) == "BAD_USER_INPUT"
        assert body["errors"][0]["extensions"]["fields"] == errors
        assert User.objects.count() == before
        assert RefreshToken.objects.count() == 0

    def test_missing_fields_are_named(self, gql):
        body = gql(REGISTER, {"input": {}})
        assert code(body) == "BAD_USER_INPUT"
        assert set(body["errors"][0]["extensions"]["fields"]) == {"username", "email", "password"}
        assert User.objects.count() == 0

    def test_registration_is_limited_per_client_address(self, gql, settings):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "register": (2, 3600)}
        assert "errors" not in register(gql, username="u1", email="u1@example.com")
        assert "errors" not in register(gql, username="u2", email="u2@example.com")
        body = register(gql, username="u3", email="u3@example.com")
        assert code(body) == "RATE_LIMITED"
        assert 0 < body["errors"][0]["extensions"]["retryAfter"] <= 3600
        assert not User.objects.filter(username="u3").exists()


class TestTokenAuth:
    @pytest.fixture(autouse=True)
    def _one_window(self, settings):
        # Fixed windows restart on the clock: keep each throttle test inside one.
        settings.LOGIN_THROTTLE_WINDOW = 10**6

    def test_log_in_by_username_case_insensitively(self, gql, alice):
        data = login(gql, "ALICE")["data"]["tokenAuth"]
        assert data["user"] == {
            "id": data["user"]["id"],
            "username": "alice",
            "displayName": "Alice",
            "email": "alice@example.com",
        }
        assert data["payload"]["username"] == "alice"
        assert data["payload"]["exp"] - data["payload"]["iat"] == 300
        assert tokens.user_for_access_token(data["token"]) == alice

    def test_log_in_by_email(self, gql, alice):
        data = login(gql, "Alice@Example.COM")["data"]["tokenAuth"]
        assert data["user"]["username"] == "alice"
        assert gql(ME, token=data["token"]) == {"data": {"me": {"username": "alice"}}}

    def test_register_then_log_in_by_username_and_by_email(self, gql):
        assert "errors" not in register(gql)
        assert login(gql, "carol")["data"]["tokenAuth"]["user"]["username"] == "carol"
        assert login(gql, "carol@example.com")["data"]["tokenAuth"]["user"]["username"] == "carol"

    def test_unknown_user_and_wrong_password_answer_the_same(self, gql, alice):
        wrong = login(gql, "alice", "not the password")
        unknown = login(gql, "nobody", PASSWORD)
        assert code(wrong) == code(unknown) == "BAD_USER_INPUT"
        assert wrong["errors"][0]["message"] == unknown["errors"][0]["message"] == "Please enter valid credentials."
        extensions = [body["errors"][0]["extensions"] for body in (wrong, unknown)]
        assert [without_request_id(e) for e in extensions] == [{"code": "BAD_USER_INPUT"}] * 2
        assert extensions[0]["requestId"] != extensions[1]["requestId"]
        assert RefreshToken.objects.count() == 0

    def test_inactive_user_cannot_log_in(self, gql, alice):
        User.objects.filter(pk=alice.pk).update(is_active=False)
        assert code(login(gql)) == "BAD_USER_INPUT"

    @pytest.mark.parametrize(
        ("variables", "fields"),
        [
            ({"username": "", "password": PASSWORD}, ["username"]),
            ({"password": PASSWORD}, ["username"]),
            ({"username": "alice", "password": ""}, ["password"]),
            ({}, ["password", "username"]),
        ],
    )
    def test_missing_fields(self, gql, alice, variables, fields):
        body = gql(TOKEN_AUTH_LOOSE, variables)
        assert code(body) == "BAD_USER_INPUT"
        assert sorted(body["errors"][0]["extensions"]["fields"]) == fields
        assert RefreshToken.objects.count() == 0

    def test_throttled_per_name_and_address_after_repeated_failures(self, gql, alice, settings):
        settings.LOGIN_THROTTLE_ATTEMPTS = 3
        for _ in range(3):
            assert code(login(gql, "alice", "wrong password")) == "BAD_USER_INPUT"
        # From this address, even the right password is refused now (case does not matter).
        for username in ("alice", "ALICE"):
            body = login(gql, username)
            assert code(body) == "RATE_LIMITED"
            retry = body["errors"][0]["extensions"]["retryAfter"]
            assert isinstance(retry, int) and 0 < retry <= settings.LOGIN_THROTTLE_WINDOW
        assert RefreshToken.objects.count() == 0

    def test_someone_elses_failures_never_refuse_the_right_password(self, alice, settings):
        """Wrong passwords from another address, however many, do not lock the owner out."""
        attacker, owner = from_address("203.0.113.66"), from_address("198.51.100.7")
        settings.LOGIN_SLOWDOWN_MAX = 0.1
        for _ in range(settings.LOGIN_THROTTLE_ADDRESS_ATTEMPTS + 5):
            assert code(login(attacker, "alice", "wrong")) in {"BAD_USER_INPUT", "RATE_LIMITED"}
        assert code(login(attacker, "alice")) == "RATE_LIMITED"
        body = login(owner, "alice")
        assert body["data"]["tokenAuth"]["user"]["username"] == "alice", body

    def test_a_registered_email_answers_like_an_unknown_one(self, gql, alice, settings):
        """While one name is refused, its account's email and an unknown email answer alike."""
        settings.LOGIN_THROTTLE_ATTEMPTS = 2
        for _ in range(2):
            assert code(login(gql, "alice", "wrong")) == "BAD_USER_INPUT"
        assert code(login(gql, "alice", "wrong")) == "RATE_LIMITED"
        for email in ("alice@example.com", "nobody@example.com"):
            answers = [login(gql, email, "wrong") for _ in range(3)]
            assert [code(a) for a in answers] == ["BAD_USER_INPUT", "BAD_USER_INPUT", "RATE_LIMITED"]
            assert answers[0]["errors"][0]["message"] == "Please enter valid credentials."

    def test_failures_from_everywhere_slow_the_account_gently(self, alice, settings):
        settings.LOGIN_SLOWDOWN_AFTER = 2
        settings.LOGIN_SLOWDOWN_STEP = 0.4
        settings.LOGIN_SLOWDOWN_MAX = 0.8
        for n in range(4):
            assert code(login(from_address(f"203.0.113.{n}"), "alice", "wrong")) == "BAD_USER_INPUT"
        started = time.monotonic()
        body = login(from_address("198.51.100.7"), "alice")
        assert time.monotonic() - started >= 0.8  # slowed, capped, and still let in
        assert body["data"]["tokenAuth"]["user"]["username"] == "alice", body
        assert accounts.login_delay("alice") == 0.8
        assert accounts.login_delay("bob") == 0  # another name is not slowed

    def test_throttled_per_client_address(self, gql, alice, bob, settings):
        settings.LOGIN_THROTTLE_ADDRESS_ATTEMPTS = 3
        assert code(login(gql, "alice", "wrong")) == "BAD_USER_INPUT"
        assert code(login(gql, "bob", "wrong")) == "BAD_USER_INPUT"
        assert code(login(gql, "nobody", "wrong")) == "BAD_USER_INPUT"
        body = login(gql, "bob")  # right password, but this address is out of attempts
        assert code(body) == "RATE_LIMITED"
        assert body["errors"][0]["extensions"]["retryAfter"] > 0

    def test_unknown_names_are_throttled_like_known_ones(self, gql, settings):
        settings.LOGIN_THROTTLE_ATTEMPTS = 2
        assert code(login(gql, "ghost", "x")) == "BAD_USER_INPUT"
        assert code(login(gql, "ghost", "x")) == "BAD_USER_INPUT"
        assert code(login(gql, "ghost", "x")) == "RATE_LIMITED"

    def test_success_resets_the_account_counter(self, gql, alice, settings):
        settings.LOGIN_THROTTLE_ATTEMPTS = 2
        assert code(login(gql, "alice", "wrong")) == "BAD_USER_INPUT"
        assert "errors" not in login(gql)
        assert code(login(gql, "alice", "wrong")) == "BAD_USER_INPUT"
        assert "errors" not in login(gql)


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["sub"] = "999999"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _alg_none(user: User) -> str:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims(user)).encode()).rstrip(b"=").decode()
    return f"{header}.{body}."


BAD_TOKENS = {
    "expired": lambda u: signed(
        claims(u, iat=int(timezone.now().timestamp()) - 600, exp=int(timezone.now().timestamp()) - 1)
    ),
    "tampered": lambda u: _tamper(tokens.create_access_token(u)[0]),
    "alg none": _alg_none,
    "other key": lambda u: signed(claims(u), key="another-key-entirely-0123456789abcdef"),
    "HS512 with our key": lambda u: signed(claims(u), algorithm="HS512"),
    "wrong issuer": lambda u: signed(claims(u, iss="someone-else")),
    "no issuer": lambda u: signed(claims(u, iss=None)),
    "wrong type": lambda u: signed(claims(u, type="refresh")),
    "no type": lambda u: signed(claims(u, type=None)),
    "no exp": lambda u: signed(claims(u, exp=None)),
    "unknown user": lambda u: signed(claims(u, sub="999999")),
    "old version": lambda u: signed(claims(u, ver=u.token_version - 1)),
    "refresh token as access": lambda u: tokens.issue_tokens(u).refresh_token,
    "garbage": lambda u: "not-a-jwt",
}


class TestBadTokens:
    @pytest.fixture
    def victim(self, alice):
        User.objects.filter(pk=alice.pk).update(token_version=3)
        alice.refresh_from_db()
        return alice

    @pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
    def test_refused_as_access_token(self, gql, victim, kind):
        token = BAD_TOKENS[kind](victim)
        assert code(gql(ME, token=token)) == "UNAUTHENTICATED"
        assert code(gql(ME, headers={"Authorization": f"Bearer {token}"})) == "UNAUTHENTICATED"
        assert code(gql(VERIFY_TOKEN, {"token": token})) == "UNAUTHENTICATED"

    def test_a_good_token_in_either_header_form(self, gql, victim):
        token = tokens.create_access_token(victim)[0]
        assert gql(ME, token=token) == {"data": {"me": {"username": "alice"}}}
        assert gql(ME, headers={"Authorization": f"Bearer {token}"}) == {"data": {"me": {"username": "alice"}}}
        assert code(gql(ME, headers={"Authorization": f"Token {token}"})) == "UNAUTHENTICATED"

    def test_verify_token_returns_the_payload(self, gql, victim):
        token, payload = tokens.create_access_token(victim)
        data = gql(VERIFY_TOKEN, {"token": token})["data"]["verifyToken"]
        assert data == {"payload": payload, "user": {"username": "alice"}}

    def test_access_token_refused_as_refresh_token(self, gql, victim):
        token = tokens.create_access_token(victim)[0]
        assert code(gql(REFRESH_TOKEN, {"refreshToken": token})) == "UNAUTHENTICATED"
        assert code(gql(REVOKE_TOKEN, {"refreshToken": token})) == "UNAUTHENTICATED"


class TestRefresh:
    def test_rotation_issues_a_new_pair_and_retires_the_old_refresh_token(self, gql, alice):
        first = login(gql)["data"]["tokenAuth"]
        second = gql(REFRESH_TOKEN, {"refreshToken": first["refreshToken"]})["data"]["refreshToken"]
        assert second["refreshToken"] != first["refreshToken"]
        assert second["token"] != first["token"]
        assert second["user"]["username"] == "alice"
        assert gql(ME, token=second["token"]) == {"data": {"me": {"username": "alice"}}}
        rows = RefreshToken.objects.filter(user=alice).order_by("pk")
        assert rows.count() == 2 and len({r.family for r in rows}) == 1
        third = gql(REFRESH_TOKEN, {"refreshToken": second["refreshToken"]})["data"]["refreshToken"]
        assert third["refreshToken"] not in {first["refreshToken"], second["refreshToken"]}

    def test_reusing_a_rotated_token_revokes_the_whole_family(self, gql, alice):
        first = login(gql)["data"]["tokenAuth"]
        other_device = login(gql)["data"]["tokenAuth"]
        second = gql(REFRESH_TOKEN, {"refreshToken": first["refreshToken"]})["data"]["refreshToken"]
        # A thief replays the old token: refused, and the owner's newer token dies too.
        assert code(gql(REFRESH_TOKEN, {"refreshToken": first["refreshToken"]})) == "UNAUTHENTICATED"
        assert code(gql(REFRESH_TOKEN, {"refreshToken": second["refreshToken"]})) == "UNAUTHENTICATED"
        # Another log-in (another family) is untouched.
        assert "errors" not in gql(REFRESH_TOKEN, {"refreshToken": other_device["refreshToken"]})

    def test_expired_refresh_token_is_refused(self, gql, alice):
        issued = tokens.issue_tokens(alice)
        RefreshToken.objects.filter(user=alice).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert code(gql(REFRESH_TOKEN, {"refreshToken": issued.refresh_token})) == "UNAUTHENTICATED"
        assert RefreshToken.objects.count() == 1

    def test_works_while_the_client_still_sends_its_expired_access_token(self, gql, alice):
        # Apollo-style clients keep sending the old header; refresh and log-in must not need a valid one.
        session = login(gql)["data"]["tokenAuth"]
        expired = BAD_TOKENS["expired"](alice)
        body = gql(REFRESH_TOKEN, {"refreshToken": session["refreshToken"]}, token=expired)
        assert body["data"]["refreshToken"]["user"]["username"] == "alice"
        assert login(gql, token=expired)["data"]["tokenAuth"]["user"]["username"] == "alice"

    def test_missing_refresh_token(self, gql):
        body = gql("mutation { refreshToken { token } }")
        assert code(body) == "BAD_USER_INPUT"
        assert body["errors"][0]["extensions"]["fields"] == {"refreshToken": ["This field is required."]}

    def test_unknown_refresh_token(self, gql, alice):
        assert code(gql(REFRESH_TOKEN, {"refreshToken": "made-up"})) == "UNAUTHENTICATED"


class TestRevoke:
    def test_revoke_token_ends_one_refresh_token(self, gql, alice):
        first = login(gql)["data"]["tokenAuth"]
        second = login(gql)["data"]["tokenAuth"]
        revoked = gql(REVOKE_TOKEN, {"refreshToken": first["refreshToken"]})["data"]["revokeToken"]["revoked"]
        assert abs(revoked - timezone.now().timestamp()) < 5
        assert code(gql(REFRESH_TOKEN, {"refreshToken": first["refreshToken"]})) == "UNAUTHENTICATED"
        assert code(gql(REVOKE_TOKEN, {"refreshToken": first["refreshToken"]})) == "UNAUTHENTICATED"
        assert "errors" not in gql(REFRESH_TOKEN, {"refreshToken": second["refreshToken"]})

    def test_revoke_all_tokens_logs_out_everywhere(self, gql, alice, bob):
        phone = login(gql)["data"]["tokenAuth"]
        laptop = login(gql)["data"]["tokenAuth"]
        bobs = login(gql, "bob")["data"]["tokenAuth"]
        assert "revoked" in gql(REVOKE_ALL_TOKENS, token=laptop["token"])["data"]["revokeAllTokens"]
        for session in (phone, laptop):
            assert code(gql(ME, token=session["token"])) == "UNAUTHENTICATED"
            assert code(gql(REFRESH_TOKEN, {"refreshToken": session["refreshToken"]})) == "UNAUTHENTICATED"
        assert gql(ME, token=bobs["token"]) == {"data": {"me": {"username": "bob"}}}
        assert "errors" not in login(gql)  # logging in again works

    def test_revoke_all_tokens_needs_a_user(self, gql):
        assert code(gql(REVOKE_ALL_TOKENS)) == "UNAUTHENTICATED"


class TestChangePassword:
    def test_ends_old_access_and_refresh_tokens(self, gql, alice):
        old = login(gql)["data"]["tokenAuth"]
        other = login(gql)["data"]["tokenAuth"]
        body = gql(CHANGE_PASSWORD, {"old": PASSWORD, "new": NEW_PASSWORD}, token=old["token"])
        fresh = body["data"]["changePassword"]
        assert code(gql(ME, token=old["token"])) == "UNAUTHENTICATED"
        assert code(gql(ME, token=other["token"])) == "UNAUTHENTICATED"
        assert code(gql(REFRESH_TOKEN, {"refreshToken": old["refreshToken"]})) == "UNAUTHENTICATED"
        assert code(gql(REFRESH_TOKEN, {"refreshToken": other["refreshToken"]})) == "UNAUTHENTICATED"
        assert gql(ME, token=fresh["token"]) == {"data": {"me": {"username": "alice"}}}
        assert "errors" not in gql(REFRESH_TOKEN, {"refreshToken": fresh["refreshToken"]})
        assert code(login(gql)) == "BAD_USER_INPUT"
        assert "errors" not in login(gql, password=NEW_PASSWORD)

    @pytest.mark.parametrize(
        ("variables", "fields"),
        [
            ({"old": "wrong password", "new": NEW_PASSWORD}, {"oldPassword": ["Wrong password."]}),
            ({"old": None, "new": NEW_PASSWORD}, {"oldPassword": ["This field is required."]}),
            ({"old": PASSWORD, "new": ""}, {"newPassword": ["This field is required."]}),
            (
                {"old": PASSWORD, "new": "123"},
                {
                    "newPassword": [
                        "This password is too short. It must contain at least 8 characters.",
                        "This password is too common.",
                        "This password is entirely numeric.",
                    ]
                },
            ),
            (
                {"old": PASSWORD, "new": "alice1234"},
                {"newPassword": ["The password is too similar to the username."]},
            ),
        ],
    )
    def test_bad_input_changes_nothing(self, gql, alice, variables, fields):
        token = tokens.create_access_token(alice)[0]
        password_hash = alice.password
        body = gql(CHANGE_PASSWORD, variables, token=token)
        assert code(body) == "BAD_USER_INPUT"
        assert body["errors"][0]["extensions"]["fields"] == fields
        alice.refresh_from_db()
        assert alice.password == password_hash and alice.token_version == 0
        assert gql(ME, token=token) == {"data": {"me": {"username": "alice"}}}

    def test_wrong_old_passwords_are_throttled(self, gql, alice, settings):
        settings.LOGIN_THROTTLE_ATTEMPTS = 2
        token = tokens.create_access_token(alice)[0]
        for _ in range(2):
            assert code(gql(CHANGE_PASSWORD, {"old": "guess", "new": NEW_PASSWORD}, token=token)) == "BAD_USER_INPUT"
        assert code(gql(CHANGE_PASSWORD, {"old": PASSWORD, "new": NEW_PASSWORD}, token=token)) == "RATE_LIMITED"
        alice.refresh_from_db()
        assert alice.check_password(PASSWORD)

    def test_needs_a_user(self, gql):
        assert code(gql(CHANGE_PASSWORD, {"old": PASSWORD, "new": NEW_PASSWORD})) == "UNAUTHENTICATED"


class TestUpdateProfile:
    def test_changes_given_fields_only(self, gql, alice):
        alice.bio = "old bio"
        alice.save()
        body = gql(UPDATE_PROFILE, {"input": {"displayName": "  Alice A.  ", "email": "NEW@Example.COM"}}, user=alice)
        assert body["data"]["updateProfile"] == {
            "id": body["data"]["updateProfile"]["id"],
            "username": "alice",
            "displayName": "Alice A.",
            "bio": "old bio",
            "email": "NEW@example.com",
        }
        alice.refresh_from_db()
        assert (alice.display_name, alice.bio, alice.email) == ("Alice A.", "old bio", "NEW@example.com")

    @pytest.mark.parametrize(
        ("changes", "fields"),
        [
            ({"email": "BOB@example.com"}, {"email": ["A user with that email address already exists."]}),
            ({"email": "nope"}, {"email": ["Enter a valid email address."]}),
            ({"email": ""}, {"email": ["This field is required."]}),
            (
                {"displayName": "x" * 65, "bio": "b" * 501},
                {
                    "displayName": ["Ensure this value has at most 64 characters."],
                    "bio": ["Ensure this value has at most 500 characters."],
                },
            ),
        ],
    )
    def test_bad_input_changes_nothing(self, gql, alice, bob, changes, fields):
        body = gql(UPDATE_PROFILE, {"input": {"displayName": "Changed", **changes}}, user=alice)
        assert code(body) == "BAD_USER_INPUT"
        assert body["errors"][0]["extensions"]["fields"] == fields
        alice.refresh_from_db()
        assert (alice.display_name, alice.email) == ("Alice", "alice@example.com")

    def test_keeping_ones_own_email_is_fine(self, gql, alice):
        body = gql(UPDATE_PROFILE, {"input": {"email": "ALICE@example.com"}}, user=alice)
        assert body["data"]["updateProfile"]["email"] == "ALICE@example.com"

    def test_needs_a_user(self, gql):
        assert code(gql(UPDATE_PROFILE, {"input": {"displayName": "x"}})) == "UNAUTHENTICATED"


class TestDeleteAccount:
    def test_deletes_the_user_and_keeps_their_messages(self, gql, alice, bob):
        room = Room.objects.create(name="lobby")
        kept = Message.objects.create(room=room, sender=alice, text="hello")
        session = login(gql)["data"]["tokenAuth"]
        body = gql(DELETE_ACCOUNT, {"password": PASSWORD}, token=session["token"])
        assert body == {"data": {"deleteAccount": {"deletedId": body["data"]["deleteAccount"]["deletedId"]}}}
        assert base64.b64decode(body["data"]["deleteAccount"]["deletedId"]).decode() == f"User:{alice.pk}"
        assert not User.objects.filter(pk=alice.pk).exists()
        kept.refresh_from_db()
        assert kept.sender_id is None and kept.text == "hello"
        assert RefreshToken.objects.filter(user_id=alice.pk).count() == 0
        assert code(gql(ME, token=session["token"])) == "UNAUTHENTICATED"
        assert code(gql(REFRESH_TOKEN, {"refreshToken": session["refreshToken"]})) == "UNAUTHENTICATED"
        assert code(login(gql)) == "BAD_USER_INPUT"
        assert User.objects.filter(pk=bob.pk).exists()

    @pytest.mark.parametrize(
        ("password", "fields"),
        [("wrong", {"password": ["Wrong password."]}), (None, {"password": ["This field is required."]})],
    )
    def test_needs_the_password(self, gql, alice, password, fields):
        body = gql(DELETE_ACCOUNT, {"password": password}, user=alice)
        assert code(body) == "BAD_USER_INPUT"
        assert body["errors"][0]["extensions"]["fields"] == fields
        assert User.objects.filter(pk=alice.pk).exists()

    def test_needs_a_user(self, gql, alice):
        assert code(gql(DELETE_ACCOUNT, {"password": PASSWORD})) == "UNAUTHENTICATED"
        assert User.objects.filter(pk=alice.pk).exists()
