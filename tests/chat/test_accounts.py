"""The account services and the token store, below the API: rules that a client
cannot see directly (hashing at rest, families, throttling keys, races)."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.core.cache import cache
from django.db import connection

from chat import tokens
from chat.errors import BadUserInput, RateLimited, Unauthenticated
from chat.models import Event, Membership, Message, RefreshToken, Room, User
from chat.services import accounts, messages, rooms

PASSWORD = "correct horse battery"


class TestRefreshTokenStore:
    def test_only_a_hash_is_stored(self, alice):
        issued = tokens.issue_tokens(alice)
        row = RefreshToken.objects.get(user=alice)
        assert row.token_hash == hashlib.sha256(issued.refresh_token.encode()).hexdigest()
        assert issued.refresh_token not in {row.token_hash, str(row.family)}
        assert len(issued.refresh_token) >= 43  # 256 bits, URL-safe base64

    def test_refresh_token_is_not_a_jwt_and_never_an_access_token(self, alice):
        issued = tokens.issue_tokens(alice)
        assert issued.refresh_token.count(".") == 0
        with pytest.raises(Unauthenticated):
            tokens.user_for_access_token(issued.refresh_token)
        with pytest.raises(Unauthenticated):
            tokens.rotate_refresh_token(issued.token)

    def test_rotation_keeps_the_family_and_marks_the_old_token_used(self, alice):
        first = tokens.issue_tokens(alice)
        second = tokens.rotate_refresh_token(first.refresh_token)
        old, new = RefreshToken.objects.order_by("pk")
        assert old.family == new.family
        assert old.used_at is not None and old.revoked_at is None
        assert new.used_at is None and new.revoked_at is None
        assert second.user == alice

    def test_reuse_revokes_the_family_and_commits_the_revocation(self, alice):
        first = tokens.issue_tokens(alice)
        unrelated = tokens.issue_tokens(alice)
        tokens.rotate_refresh_token(first.refresh_token)
        with pytest.raises(Unauthenticated, match="already been used"):
            tokens.rotate_refresh_token(first.refresh_token)
        family = RefreshToken.objects.filter(
            family=RefreshToken.objects.get(token_hash=tokens.hash_refresh_token(first.refresh_token)).family
        )
        assert family.count() == 2 and all(row.revoked_at is not None for row in family)
        assert (
            RefreshToken.objects.get(token_hash=tokens.hash_refresh_token(unrelated.refresh_token)).revoked_at is None
        )

    def test_inactive_user_cannot_refresh(self, alice):
        issued = tokens.issue_tokens(alice)
        User.objects.filter(pk=alice.pk).update(is_active=False)
        with pytest.raises(Unauthenticated):
            tokens.rotate_refresh_token(issued.refresh_token)

    def test_revoke_all_bumps_the_version_and_revokes_every_refresh_token(self, alice, bob):
        tokens.issue_tokens(alice)
        tokens.issue_tokens(alice)
        tokens.issue_tokens(bob)
        tokens.revoke_all_tokens(alice)
        assert alice.token_version == 1
        assert RefreshToken.objects.filter(user=alice, revoked_at__isnull=True).count() == 0
        assert RefreshToken.objects.filter(user=bob, revoked_at__isnull=True).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor == "sqlite", reason="needs row locks (Postgres): services mode")
@pytest.mark.services
def test_two_concurrent_refreshes_with_one_token_give_one_winner(alice):
    issued = tokens.issue_tokens(alice)
    results: list[str] = []

    def refresh():
        try:
            tokens.rotate_refresh_token(issued.refresh_token)
            results.append("ok")
        except Unauthenticated:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok", "refused"]
    # The loser looked like a replay: the whole family is gone, the winner's token too.
    assert RefreshToken.objects.filter(user=alice, revoked_at__isnull=True).count() == 0


class TestRegisterService:
    def test_registration_counts_per_client_address(self, db, settings):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "register": (1, 3600)}
        accounts.register_user(username="u1", email="u1@example.com", password=PASSWORD, client_address="10.0.0.1")
        with pytest.raises(RateLimited):
            accounts.register_user(username="u2", email="u2@example.com", password=PASSWORD, client_address="10.0.0.1")
        accounts.register_user(username="u3", email="u3@example.com", password=PASSWORD, client_address="10.0.0.2")
        assert sorted(User.objects.values_list("username", flat=True)) == ["u1", "u3"]

    def test_email_is_normalized_and_names_trimmed(self, db):
        issued = accounts.register_user(
            username="  dave ",
            email="Dave@EXAMPLE.com",
            password=PASSWORD,
            display_name="  Dave D ",
            client_address="x",
        )
        user = User.objects.get(pk=issued.user.pk)
        assert (user.username, user.email, user.display_name) == ("dave", "Dave@example.com", "Dave D")


class TestLoginThrottleKeys:
    def test_address_budget_is_separate_per_address(self, alice, settings):
        settings.LOGIN_THROTTLE_ADDRESS_ATTEMPTS = 1
        settings.LOGIN_THROTTLE_ATTEMPTS = 100
        with pytest.raises(BadUserInput):
            accounts.obtain_tokens(username="alice", password="wrong", client_address="10.0.0.1")
        with pytest.raises(RateLimited):
            accounts.obtain_tokens(username="alice", password=PASSWORD, client_address="10.0.0.1")
        assert accounts.obtain_tokens(username="alice", password=PASSWORD, client_address="10.0.0.2").user == alice

    def test_failures_from_other_addresses_never_refuse(self, alice, settings):
        settings.LOGIN_THROTTLE_ATTEMPTS = 2
        settings.LOGIN_SLOWDOWN_AFTER = 100
        for address in ("10.0.0.1", "10.0.0.2"):
            for _ in range(2):
                with pytest.raises(BadUserInput):
                    accounts.obtain_tokens(username="alice", password="wrong", client_address=address)
            with pytest.raises(RateLimited):
                accounts.obtain_tokens(username="alice", password=PASSWORD, client_address=address)
        assert accounts.obtain_tokens(username="alice", password=PASSWORD, client_address="10.0.0.3").user == alice

    def test_the_window_ends(self, alice, settings):
        settings.LOGIN_THROTTLE_ATTEMPTS = 1
        with pytest.raises(BadUserInput):
            accounts.obtain_tokens(username="alice", password="wrong", client_address="a")
        with pytest.raises(RateLimited):
            accounts.obtain_tokens(username="alice", password=PASSWORD, client_address="a")
        cache.clear()  # as when the window rolls over
        assert accounts.obtain_tokens(username="alice", password=PASSWORD, client_address="a").user == alice


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_cannot_slip_past_the_limit(alice, settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 3
    start = threading.Barrier(8)
    results: list[str] = []

    def guess():
        start.wait()
        try:
            accounts.obtain_tokens(username="alice", password="wrong", client_address="10.0.0.9")
        except BadUserInput:
            results.append("wrong")
        except RateLimited:
            results.append("limited")
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["limited"] * 5 + ["wrong"] * 3


class TestDeleteAccount:
    def test_messages_stay_from_a_deleted_user_and_memberships_go(self, alice, bob):
        room = Room.objects.create(name="lobby", created_by=alice)
        Membership.objects.create(room=room, user=alice, role=Membership.Role.OWNER)
        Membership.objects.create(room=room, user=bob)
        mine = Message.objects.create(room=room, sender=alice, text="mine")
        reply = Message.objects.create(room=room, sender=bob, text="reply", reply_to=mine)
        tokens.issue_tokens(alice)
        deleted_id = accounts.delete_account(alice, password=PASSWORD, client_address="a")
        assert deleted_id == alice.pk
        assert list(Message.objects.filter(room=room).order_by("pk").values_list("sender_id", "text")) == [
            (None, "mine"),
            (bob.pk, "reply"),
        ]
        reply.refresh_from_db()
        assert reply.reply_to_id == mine.pk
        room.refresh_from_db()
        assert room.created_by_id is None
        assert list(Membership.objects.filter(room=room).values_list("user_id", flat=True)) == [bob.pk]
        assert RefreshToken.objects.count() == 0

    def test_wrong_password_deletes_nothing(self, alice):
        with pytest.raises(BadUserInput):
            accounts.delete_account(alice, password="nope", client_address="a")
        assert User.objects.filter(pk=alice.pk).exists()


class TestDeleteAccountTellsTheRooms:
    def test_every_room_gets_member_left_deleted_and_ownership_passes_on(self, alice, bob, make_user):
        carol = make_user("carol")
        owned = rooms.create_room(alice, "owned", member_ids=[carol.pk, bob.pk])
        joined = rooms.create_room(bob, "joined", member_ids=[alice.pk])
        direct = rooms.start_direct_chat(bob, alice.pk)
        gone = rooms.create_room(alice, "gone", member_ids=[bob.pk])
        rooms.delete_room(alice, gone.pk)
        sent = messages.send_message(alice, owned.pk, "bye")
        mark = Event.objects.order_by("-pk").values_list("pk", flat=True).first()
        alice_snap = {"id": alice.pk, "username": "alice", "display_name": "Alice"}

        accounts.delete_account(alice, password=PASSWORD, client_address="a")

        left = {"user": alice_snap, "reason": "deleted", "by": None}
        assert [
            (e.room_id, e.kind, e.seq, e.payload, e.actor_id) for e in Event.objects.filter(pk__gt=mark).order_by("pk")
        ] == [
            (owned.pk, "MemberLeft", 5, left, None),
            (joined.pk, "MemberLeft", 3, left, None),
            (direct.pk, "MemberLeft", 3, left, None),
        ]
        # The longest-standing member inherits; the direct chat stays, for bob alone.
        assert list(Membership.objects.filter(room=owned).order_by("pk").values_list("user_id", "role")) == [
            (carol.pk, "owner"),
            (bob.pk, "member"),
        ]
        assert list(Membership.objects.filter(room=direct).values_list("user_id", flat=True)) == [bob.pk]
        assert Room.objects.filter(pk=direct.pk, deleted_at__isnull=True).exists()
        assert list(Message.objects.filter(pk=sent.pk).values_list("sender_id", "text")) == [(None, "bye")]
        assert not Event.objects.filter(room=gone, pk__gt=mark).exists()

    def test_wrong_password_tells_nobody(self, alice, bob):
        room = rooms.create_room(alice, "owned", member_ids=[bob.pk])
        events_before = Event.objects.count()
        with pytest.raises(BadUserInput):
            accounts.delete_account(alice, password="nope", client_address="a")
        assert Event.objects.count() == events_before
        assert list(Membership.objects.filter(room=room).order_by("pk").values_list("user_id", "role")) == [
            (alice.pk, "owner"),
            (bob.pk, "member"),
        ]
