"""The Django admin as staff use it, through its real pages: its log-in is
throttled like the API's, and its changes to messages, rooms and memberships
go through the same services (events, rules) or are not offered."""

from __future__ import annotations

import pytest
from django.test import Client

PASSWORD = "correct horse battery"


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
        body = gql('mutation { tokenAuth(username: "boss", password: "%s") { token } }' % PASSWORD)
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"

    def test_non_staff_cannot_sign_in(self, make_user):
        make_user("plain", password=PASSWORD)
        client = Client()
        response = admin_login(client, "plain", PASSWORD)
        assert response.status_code == 200 and not signed_in(client)
