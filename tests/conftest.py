"""Fixtures that act like real clients: users per role with real JWTs, a
GraphQL-over-HTTP client and a GraphQL-over-WebSocket client, both through the
project's ASGI application."""

from __future__ import annotations

import json
import os

import pytest
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from django.core.cache import cache
from django.test import AsyncClient, Client

from chat import events, tokens
from chat.models import Room, User
from chat.services import rooms as room_services
from tests.chat_world import world_fixture  # noqa: F401 - the `world` fixture, for every test module
from tests.clients import GraphQLClient, WSClient

SERVICES_MODE = bool(os.environ.get("DATABASE_URL")) and bool(os.environ.get("REDIS_URL"))


def pytest_collection_modifyitems(config, items):
    if SERVICES_MODE:
        return
    skip = pytest.mark.skip(reason="services mode only: set DATABASE_URL and REDIS_URL")
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test database, whose drop at the end must not find the
    connections that the request threads and the WebSocket side's sync thread keep
    (Postgres refuses to drop a database in use)."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    from backend import request_threads

    request_threads.pool.close()
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """Each test gets its own media folder and a clean cache (rate limits)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """A new channel layer per test: channels_redis binds its locks and pools to
    the event loop that first used them, and each test runs in its own loop."""
    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
    yield
    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)


@pytest.fixture
def make_user(db):
    counter = {"n": 0}

    def make(username: str | None = None, password: str = "correct horse battery", **fields) -> User:
        counter["n"] += 1
        username = username or f"user{counter['n']}"
        fields.setdefault("email", f"{username}@example.com")
        return User.objects.create_user(username=username, password=password, **fields)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice", display_name="Alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob", display_name="Bob")


@pytest.fixture
def carol(make_user):
    return make_user("carol", display_name="Carol")


@pytest.fixture
def room(alice, bob):
    """A public room of alice's ("lobby") that bob has joined; carol is not a member."""
    created = room_services.create_room(alice, "lobby")
    room_services.join_room(bob, created.pk)
    return Room.objects.get(pk=created.pk)


@pytest.fixture
def staff(make_user):
    return make_user("staffer", is_staff=True)


@pytest.fixture
def published(monkeypatch):
    """Every (groups, message) published after commit, in order (nothing reaches the channel layer)."""
    sent: list[tuple[list[str], dict]] = []
    monkeypatch.setattr(events, "publish", lambda groups, message: sent.append((list(groups), message)))
    return sent


def access_token(user: User) -> str:
    return tokens.create_access_token(user)[0]


@pytest.fixture
def gql(db):
    """``gql(query, variables=None, user=None)`` posts a GraphQL operation over HTTP and returns the JSON body."""
    return GraphQLClient(Client())


@pytest.fixture
def agql(db):
    """The async twin of ``gql``, for tests that also hold WebSockets."""
    return GraphQLClient(AsyncClient())


@pytest.fixture
def api(agql):
    """``await api(query, variables, user)``: the ``data`` of a successful operation over HTTP."""

    async def call(query: str, variables: dict, user: User) -> dict:
        body = await agql(query, variables, user=user)
        assert "errors" not in body, body
        return body["data"]

    return call


@pytest.fixture
def ws():
    """``await ws(user=None, protocol=...)`` opens a GraphQL WebSocket through the ASGI app."""
    opened: list[WSClient] = []

    async def connect(user: User | None = None, protocol: str = "graphql-transport-ws", **kwargs) -> WSClient:
        client = WSClient(token=access_token(user) if user else None, protocol=protocol, **kwargs)
        opened.append(client)
        return client

    yield connect
    # Clients close themselves in tests; anything left open is closed by the loop's teardown.
    assert all(isinstance(c, WSClient) for c in opened)


def pytest_report_header(config):
    return [
        f"mode: {'services (Postgres + Redis)' if SERVICES_MODE else 'embedded (SQLite + in-memory layer)'}",
        f"database: {settings.DATABASES['default']['ENGINE']}",
        f"channel layer: {json.dumps(settings.CHANNEL_LAYERS['default']['BACKEND'])}",
    ]
