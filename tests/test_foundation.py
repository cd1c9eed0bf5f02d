"""The skeleton: settings in both modes, constraints, admin, health, and `me` over both transports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from chat.models import Membership, Message, Room, User
from tests.clients import WSClient, token_for

ME = "query Me { me { id username displayName email } }"


def run_settings(env: dict, code: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with exactly ``env`` set."""
    base = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"} and not k.startswith("DJANGO_")
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='backend.settings'; django.setup(); from django.conf import settings as s; {code}",
        ],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


class TestSettings:
    def test_embedded_default_is_sqlite_wal_and_in_memory_layer(self):
        out = run_settings(
            {},
            "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['OPTIONS']['transaction_mode'], s.CHANNEL_LAYERS['default']['BACKEND'], s.CACHES['default']['BACKEND'])",
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [
            "django.db.backends.sqlite3",
            "IMMEDIATE",
            "schema.live.channels_adapter.LinearInMemoryChannelLayer",
            "django.core.cache.backends.locmem.LocMemCache",
        ]

    def test_sqlite_connection_uses_wal(self):
        out = run_settings(
            {},
            "from django.db import connection; c=connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])",
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "wal"

    def test_services_mode_from_environment(self):
        out = run_settings(
            {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test", "REDIS_URL": "redis://127.0.0.1:6379/0"},
            "d=s.DATABASES['default']; print(d['ENGINE'], d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'], s.CHANNEL_LAYERS['default']['BACKEND'], s.CACHES['default']['BACKEND'])",
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [
            "django.db.backends.postgresql",
            "300",
            "True",
            "channels_redis.pubsub.RedisPubSubChannelLayer",
            "backend.redis_cache.SharedRedisCache",
        ]

    @pytest.mark.parametrize(
        ("kind", "backend"),
        [("redis", "schema.live.channels_redis_adapter.WaitingRedisChannelLayer"), ("smoke-signals", None)],
    )
    def test_channel_layer_choice(self, kind, backend):
        out = run_settings(
            {"REDIS_URL": "redis://127.0.0.1:6379/0", "CHANNEL_LAYER": kind},
            "print(s.CHANNEL_LAYERS['default']['BACKEND'])",
        )
        if backend is None:
            assert out.returncode != 0 and "CHANNEL_LAYER must be" in out.stderr
        else:
            assert out.returncode == 0, out.stderr
            assert out.stdout.split() == [backend]

    @pytest.mark.parametrize("secret", [None, "short", "dev-insecure-secret-key-change-me-in-production-0123456789"])
    def test_production_refuses_to_start_without_a_real_secret(self, secret):
        env = {"DJANGO_DEBUG": "false", "ALLOWED_HOSTS": "chat.example.com"}
        if secret:
            env["DJANGO_SECRET_KEY"] = secret
        out = run_settings(env, "print('started')")
        assert out.returncode != 0
        assert "DJANGO_SECRET_KEY" in out.stderr

    def test_production_check_deploy_is_clean(self):
        env = {
            "DJANGO_DEBUG": "false",
            "ALLOWED_HOSTS": "chat.example.com",
            "DJANGO_SECRET_KEY": "k" * 20 + "-Zq8!x7@w#e$r%t^y&u*i(o)p_a+s=d" + "j" * 20,
        }
        base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
        out = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "no issues" in out.stdout


@pytest.mark.django_db(transaction=True)
class TestConstraints:
    def test_second_direct_room_for_the_same_pair_fails_in_the_database(self, alice, bob):
        key = Room.direct_key_for(bob.pk, alice.pk)
        Room.objects.create(name="dm", kind=Room.Kind.DIRECT, is_private=True, direct_key=key)
        with pytest.raises(IntegrityError), transaction.atomic():
            Room.objects.create(
                name="dm again",
                kind=Room.Kind.DIRECT,
                is_private=True,
                direct_key=Room.direct_key_for(alice.pk, bob.pk),
            )
        assert Room.objects.filter(kind=Room.Kind.DIRECT).count() == 1

    def test_group_room_cannot_carry_a_direct_key(self, alice, bob):
        with pytest.raises(IntegrityError), transaction.atomic():
            Room.objects.create(name="g", direct_key=Room.direct_key_for(alice.pk, bob.pk))

    def test_one_membership_per_user_and_room(self, alice):
        room = Room.objects.create(name="r")
        Membership.objects.create(room=room, user=alice)
        with pytest.raises(IntegrityError), transaction.atomic():
            Membership.objects.create(room=room, user=alice)

    def test_client_id_unique_per_sender_only(self, alice, bob):
        room = Room.objects.create(name="r")
        Message.objects.create(room=room, sender=alice, text="hi", client_id="k1")
        Message.objects.create(room=room, sender=bob, text="hi", client_id="k1")
        Message.objects.create(room=room, sender=alice, text="no key")
        Message.objects.create(room=room, sender=alice, text="no key either")
        with pytest.raises(IntegrityError), transaction.atomic():
            Message.objects.create(room=room, sender=alice, text="again", client_id="k1")

    def test_usernames_and_emails_unique_case_insensitively(self, alice):
        with pytest.raises(IntegrityError), transaction.atomic():
            User.objects.create_user(username="ALICE", email="other@example.com")
        with pytest.raises(IntegrityError), transaction.atomic():
            User.objects.create_user(username="alice2", email="Alice@Example.com")


ADMIN_PAGES = [
    "/admin/",
    "/admin/chat/user/",
    "/admin/chat/room/",
    "/admin/chat/membership/",
    "/admin/chat/message/",
    "/admin/chat/attachment/",
    "/admin/chat/event/",
    "/admin/chat/refreshtoken/",
]


class TestAdmin:
    @pytest.mark.parametrize("url", ADMIN_PAGES)
    def test_pages_load_for_staff(self, db, url, make_user):
        admin = make_user("root", is_staff=True, is_superuser=True)
        room = Room.objects.create(name="lobby")
        Message.objects.create(room=room, sender=admin, text="hello")
        client = Client()
        client.force_login(admin)
        response = client.get(url + "?q=lo")
        assert response.status_code == 200

    @pytest.mark.parametrize("url", ADMIN_PAGES)
    def test_pages_refuse_others(self, db, url, alice):
        client = Client()
        assert client.get(url).status_code == 302  # to the login page, anonymous
        client.force_login(alice)  # signed in but not staff
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


class TestHealth:
    def test_ok_when_database_and_layer_answer(self, db):
        response = Client().get("/healthz")
        assert response.status_code == 200
        assert response.json() == {
            "status": "ok",
            "checks": {"database": "ok", "channel_layer": "ok", "shutdown": "ok"},
        }

    def test_503_when_the_database_is_down(self, db, monkeypatch):
        from django.db import OperationalError

        from chat import views

        def down():
            raise OperationalError("connection refused")

        monkeypatch.setattr(views, "_check_database", down)
        response = Client().get("/healthz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "checks": {"database": "error: OperationalError", "channel_layer": "ok", "shutdown": "ok"},
        }


class TestMeOverHTTP:
    def test_anonymous_gets_null(self, gql):
        assert gql(ME) == {"data": {"me": None}}

    def test_signed_in_user_gets_themself(self, gql, alice):
        data = gql(ME, user=alice)["data"]["me"]
        assert data["username"] == "alice" and data["email"] == "alice@example.com"

    def test_bad_token_is_unauthenticated(self, gql):
        body = gql(ME, token="not-a-jwt")
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    def test_session_cookie_never_authenticates(self, db, alice):
        client = Client()
        client.force_login(alice)
        response = client.post("/graphql/", {"query": ME}, content_type="application/json")
        assert response.json() == {"data": {"me": None}}

    def test_graphiql_on_get_from_a_browser(self, db):
        response = Client().get("/graphql/", headers={"Accept": "text/html"})
        assert response.status_code == 200
        assert b"graphiql" in response.content.lower()


@pytest.mark.django_db(transaction=True)
class TestMeOverWebSocket:
    async def test_me_over_graphql_transport_ws(self, alice):
        client = WSClient(token=token_for(alice))
        ack = await client.connect()
        assert ack == {"type": "connection_ack", "payload": {"user": str(alice.pk)}}
        result = await client.execute(ME)
        assert result["data"]["me"]["username"] == "alice"
        await client.close()

    async def test_legacy_graphql_ws_acknowledges_a_signed_in_user(self, alice):
        # The legacy protocol carries subscriptions only; queries go over HTTP.
        client = WSClient(token=token_for(alice), protocol="graphql-ws")
        assert (await client.connect())["type"] == "connection_ack"
        await client.close()


def test_the_loaded_application_is_frozen_out_of_full_collections():
    """backend/asgi.py freezes what startup loaded: the collector's full passes (a
    pause for every delivery in flight) then walk only what came later."""
    out = run_settings({}, "import gc, backend.asgi; print(gc.get_freeze_count())")
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) > 100_000


def test_the_young_generation_is_collected_every_ten_thousand_allocations():
    """backend/asgi.py raises the young generation's threshold: at the default (700)
    the objects of the requests in flight are promoted and pile into full collections."""
    out = run_settings({}, "import gc, backend.asgi; print(*gc.get_threshold())")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-3:] == ["10000", "10", "10"]
