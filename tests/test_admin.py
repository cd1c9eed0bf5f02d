"""The Django admin as staff use it, through its real pages: its log-in is
throttled like the API's, and its changes to messages, rooms and memberships
go through the same services (events, rules) or are not offered."""

from __future__ import annotations

import io
import time

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import Client

from chat import tokens
from chat.models import Event, Membership, Message, RefreshToken, User
from chat.services import messages, rooms
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

    def test_an_accounts_failures_slow_its_log_in_gently(self, boss, settings):
        settings.LOGIN_THROTTLE_WINDOW = 10**6
        settings.LOGIN_SLOWDOWN_AFTER = 2
        settings.LOGIN_SLOWDOWN_STEP = 0.4
        for n in range(3):  # three addresses, one failure each: no address is throttled
            admin_login(Client(REMOTE_ADDR=f"203.0.113.{n + 1}"), "boss", "wrong password")
        owner = Client(REMOTE_ADDR="198.51.100.4")
        started = time.monotonic()
        response = admin_login(owner, "boss", PASSWORD)
        assert time.monotonic() - started >= 0.4  # one failure past the allowance: one step
        assert response.status_code == 302 and signed_in(owner)  # slowed, never refused

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


# --- Admin changes to messages, rooms and memberships take the write path -----------------


@pytest.fixture
def lobby(make_user, boss):
    owner, member = make_user("olga"), make_user("mia")
    room = rooms.create_room(owner, "Lobby", topic="Say hi", member_ids=[member.pk])
    message = messages.send_message(member, room.pk, "hello lobby")
    return room, owner, member, message


def events_of(room) -> list[str]:
    return list(Event.objects.filter(room=room).order_by("seq").values_list("kind", flat=True))


def message_form(message, **changes) -> dict:
    data = {"room": message.room_id, "sender": message.sender_id, "text": message.text, "client_id": ""}
    data.update({"attachments-TOTAL_FORMS": "0", "attachments-INITIAL_FORMS": "0"})
    data.update(changes)
    return data


class TestAdminMessages:
    def test_an_edit_in_the_admin_changes_nothing(self, boss, lobby):
        room, _, _, message = lobby
        before = Message.objects.values().get(pk=message.pk)
        kinds = events_of(room)
        response = staff_client(boss).post(
            f"/admin/chat/message/{message.pk}/change/", message_form(message, text="rewritten by staff")
        )
        assert response.status_code == 302
        assert Message.objects.values().get(pk=message.pk) == before  # text, edited_at, created_at to the microsecond
        assert events_of(room) == kinds

    def test_the_change_page_shows_every_field_read_only(self, boss, lobby):
        _, _, _, message = lobby
        page = staff_client(boss).get(f"/admin/chat/message/{message.pk}/change/").content.decode()
        assert 'name="text"' not in page and 'name="created_at' not in page

    @pytest.mark.parametrize("how", ["delete page", "bulk action"])
    def test_deleting_in_the_admin_is_the_soft_delete_with_its_event(self, boss, lobby, how):
        room, _, _, message = lobby
        client = staff_client(boss)
        if how == "delete page":
            response = client.post(f"/admin/chat/message/{message.pk}/delete/", {"post": "yes"})
        else:
            response = client.post(
                "/admin/chat/message/", {"action": "delete_selected", "_selected_action": [message.pk], "post": "yes"}
            )
        assert response.status_code == 302
        message.refresh_from_db()
        assert (message.text, message.deleted_at is not None) == ("", True)
        assert events_of(room)[-1] == Event.Kind.MESSAGE_DELETED
        deleted = Event.objects.filter(room=room).order_by("seq").last()
        assert deleted.actor_id == boss.pk


class TestAdminRooms:
    def test_a_rename_goes_through_update_room(self, boss, lobby):
        room, *_ = lobby
        response = staff_client(boss).post(
            f"/admin/chat/room/{room.pk}/change/", {"name": "Hall", "topic": "Say hi", **NO_INLINE_CHANGES}
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        room.refresh_from_db()
        assert room.name == "Hall"
        assert events_of(room)[-1] == Event.Kind.ROOM_UPDATED

    def test_a_bad_name_is_refused_and_changes_nothing(self, boss, lobby):
        room, *_ = lobby
        kinds = events_of(room)
        response = staff_client(boss).post(
            f"/admin/chat/room/{room.pk}/change/", {"name": "   ", "topic": "Say hi", **NO_INLINE_CHANGES}
        )
        assert response.status_code == 200
        room.refresh_from_db()
        assert room.name == "Lobby" and events_of(room) == kinds

    def test_deleting_a_room_is_the_soft_delete_with_its_event(self, boss, lobby):
        room, *_ = lobby
        response = staff_client(boss).post(f"/admin/chat/room/{room.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        room.refresh_from_db()
        assert room.deleted_at is not None
        assert events_of(room)[-1] == Event.Kind.ROOM_DELETED

    def test_rooms_are_not_added_in_the_admin(self, boss):
        assert staff_client(boss).get("/admin/chat/room/add/").status_code == 403


NO_INLINE_CHANGES = {"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}


class TestAdminMemberships:
    def test_a_role_change_in_the_admin_changes_nothing(self, boss, lobby):
        room, _, member, _ = lobby
        membership = Membership.objects.get(room=room, user=member)
        kinds = events_of(room)
        staff_client(boss).post(f"/admin/chat/membership/{membership.pk}/change/", {"role": "owner"})
        membership.refresh_from_db()
        assert membership.role == Membership.Role.MEMBER and events_of(room) == kinds

    def test_deleting_a_membership_removes_the_member_with_its_event(self, boss, lobby):
        room, _, member, _ = lobby
        membership = Membership.objects.get(room=room, user=member)
        response = staff_client(boss).post(f"/admin/chat/membership/{membership.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        assert not Membership.objects.filter(room=room, user=member).exists()
        last = Event.objects.filter(room=room).order_by("seq").last()
        assert (last.kind, last.payload["reason"]) == (Event.Kind.MEMBER_LEFT, "removed")

    def test_the_owner_cannot_be_removed_in_the_admin(self, boss, lobby):
        room, owner, _, _ = lobby
        membership = Membership.objects.get(room=room, user=owner)
        staff_client(boss).post(f"/admin/chat/membership/{membership.pk}/delete/", {"post": "yes"})
        assert Membership.objects.filter(pk=membership.pk, role=Membership.Role.OWNER).exists()

    def test_memberships_are_not_added_in_the_admin(self, boss):
        assert staff_client(boss).get("/admin/chat/membership/add/").status_code == 403
