"""The Django admin as staff use it, through its real pages: its log-in is
throttled like the API's, and its changes to messages, rooms and memberships
go through the same services (events, rules) or are not offered."""

from __future__ import annotations

import io

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import Client

from chat import tokens
from chat.models import RefreshToken, User
from tests.clients import WSClient

PASSWORD = "correct horse battery"
TOKEN_AUTH = (
    "mutation L($username: String, $password: String) { tokenAuth(username: $username, password: $password) { token } }"
)


@pytest.fixture
def boss(make_user):
    return make_user("boss", password=PASSWORD, is_staff=True, is_superuser=True)


def admin_login(client: Client, username: str, password: str):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


class TestAdminLogin:
    def test_seven_wrong_passwords_then_the_right_one_is_refused(self, boss, settings):
        settings.LOGIN_THROTTLE_WINDOW = 10**6  # fixed windows: keep this test inside one
        client = Client(REMOTE_ADDR="203.0.113.9")
        for _ in range(7):
            response = admin_login(client, "boss", "wrong password")
            assert response.status_code == 200 and not signed_in(client)
        response = admin_login(client, "boss", PASSWORD)
        assert response.status_code == 200
        assert b"Too many failed log-ins" in response.content
        assert not signed_in(client)

    def test_someone_elses_failures_do_not_lock_staff_out(self, boss, settings):
        settings.LOGIN_THROTTLE_WINDOW = 10**6
        attacker = Client(REMOTE_ADDR="203.0.113.9")
        for _ in range(7):
            admin_login(attacker, "boss", "wrong password")
        owner = Client(REMOTE_ADDR="198.51.100.4")
        response = admin_login(owner, "boss", PASSWORD)
        assert response.status_code == 302 and response["Location"] == "/admin/"
        assert signed_in(owner)

    def test_admin_and_api_failures_share_one_budget(self, boss, gql, settings):
        settings.LOGIN_THROTTLE_WINDOW = 10**6
        settings.LOGIN_THROTTLE_ATTEMPTS = 2
        client = Client()  # the same address as the API client
        admin_login(client, "boss", "wrong")
        admin_login(client, "boss", "wrong")
        body = gql(TOKEN_AUTH, {"username": "boss", "password": PASSWORD})
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"

    def test_non_staff_cannot_sign_in(self, make_user):
        make_user("plain", password=PASSWORD)
        client = Client()
        response = admin_login(client, "plain", PASSWORD)
        assert response.status_code == 200 and not signed_in(client)


# --- Every way a password changes, and deactivation, ends every token -----------------

ME = "query Me { me { username } }"
REFRESH = "mutation R($t: String) { refreshToken(refreshToken: $t) { token } }"
NEW_PASSWORD = "a brand new passphrase 7"


def user_form(user, **changes) -> dict:
    """The admin's user change form as the browser posts it (fields from UserAdmin.fieldsets)."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "is_active": "on" if user.is_active else "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
        "display_name": user.display_name,
        "bio": user.bio,
        "last_seen_at_0": "",
        "last_seen_at_1": "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != "" or key.endswith(("_0", "_1"))}


def staff_client(boss) -> Client:
    client = Client()
    client.force_login(boss)
    return client


def change_in_admin(boss, user, how: str) -> None:
    client = staff_client(boss)
    if how == "admin password form":
        url = f"/admin/chat/user/{user.pk}/password/"
        response = client.post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})
    else:  # deactivation in the user's change form
        response = client.post(f"/admin/chat/user/{user.pk}/change/", user_form(user, is_active=""))
    assert response.status_code == 302, response.content.decode()[:3000]


def changepassword_command(boss, user, how) -> None:
    from django.contrib.auth.management.commands import changepassword

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(changepassword.Command, "_get_pass", lambda self, prompt="": NEW_PASSWORD)
        call_command("changepassword", user.username, stdout=io.StringIO())


def set_password_and_save(boss, user, how) -> None:
    user.set_password(NEW_PASSWORD)
    user.save()


PATHS = {
    "admin password form": change_in_admin,
    "admin deactivation": change_in_admin,
    "manage.py changepassword": changepassword_command,
    "set_password and save": set_password_and_save,
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize("how", sorted(PATHS))
async def test_every_password_change_and_deactivation_ends_every_token(boss, make_user, agql, protocol, how):
    alice = await sync_to_async(make_user)("alice", password=PASSWORD)
    issued = await sync_to_async(tokens.issue_tokens)(alice)
    socket = WSClient(token=issued.token, protocol=protocol)
    assert (await socket.connect())["type"] == "connection_ack"
    assert await agql(ME, token=issued.token) == {"data": {"me": {"username": "alice"}}}

    await sync_to_async(PATHS[how])(boss, alice, how)

    assert await socket.receive_close(timeout=3) == 4403
    socket.connected = False
    assert (await agql(ME, token=issued.token))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    refreshed = await agql(REFRESH, {"t": issued.refresh_token})
    assert refreshed["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await sync_to_async(RefreshToken.objects.filter(user=alice, revoked_at__isnull=True).count)() == 0


def test_a_stale_admin_form_never_brings_revoked_tokens_back(boss, alice, gql):
    """The form was loaded before a "log out everywhere"; saving it must not restore the old version."""
    stale = User.objects.get(pk=alice.pk)
    token = tokens.create_access_token(alice)[0]
    tokens.revoke_all_tokens(alice)
    stale.display_name = "Alice A."
    stale.save()
    assert gql(ME, token=token)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert User.objects.get(pk=alice.pk).token_version == 1


def test_other_admin_changes_keep_tokens(boss, alice, gql):
    token = tokens.create_access_token(alice)[0]
    response = staff_client(boss).post(f"/admin/chat/user/{alice.pk}/change/", user_form(alice, bio="hello"))
    assert response.status_code == 302
    assert gql(ME, token=token) == {"data": {"me": {"username": "alice"}}}
