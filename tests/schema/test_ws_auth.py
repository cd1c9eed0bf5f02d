"""WebSocket authentication: every token carrier on both protocols, refusal of bad
tokens with 4403, anonymous connections, and the legacy refusal under real daphne."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from chat import tokens
from chat.cursors import encode_cursor
from chat.models import Message, User
from tests.chat_world import gid
from tests.clients import WSClient, token_for
from tests.live import migrated_daphne
from tests.schema.test_subscriptions import subscription_error

ROOT = Path(__file__).resolve().parent.parent.parent
PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
CARRIERS = ["init authToken", "init Authorization", "handshake header", "query string"]

ME = "query Me { me { username } }"
REVOKE_ALL_TOKENS = "mutation RevokeAll { revokeAllTokens { revoked } }"
CHANGE_PASSWORD = 'mutation { changePassword(oldPassword: "x", newPassword: "y") { token } }'


def client_with(token: str, carrier: str, protocol: str) -> tuple[WSClient, dict]:
    """A client carrying ``token`` the ``carrier`` way, and the connection_init payload to send."""
    if carrier == "init authToken":
        return WSClient(protocol=protocol), {"authToken": token}
    if carrier == "init Authorization":
        return WSClient(protocol=protocol), {"Authorization": f"Bearer {token}"}
    if carrier == "handshake header":
        return WSClient(protocol=protocol, headers=[(b"authorization", f"JWT {token}".encode())]), {}
    if carrier == "query string":
        return WSClient(protocol=protocol, path=f"/graphql/?token={token}"), {}
    raise AssertionError(carrier)


def _expired_token(user: User) -> str:
    import jwt

    now = int(timezone.now().timestamp())
    claims = {
        "sub": str(user.pk),
        "iat": now - 600,
        "exp": now - 10,
        "jti": "x",
        "type": "access",
        "ver": user.token_version,
        "iss": settings.JWT_ISSUER,
    }
    return jwt.encode(claims, tokens.signing_key(), algorithm="HS256")


def _revoked_token(user: User) -> str:
    token = token_for(user)
    tokens.revoke_all_tokens(user)
    return token


BAD_TOKENS = {
    "garbage": lambda u: "not-a-jwt",
    "expired": _expired_token,
    "revoked": _revoked_token,
    "refresh token": lambda u: tokens.issue_tokens(u).refresh_token,
}


@pytest.mark.django_db(transaction=True)
class TestCarriers:
    @pytest.mark.parametrize("protocol", PROTOCOLS)
    @pytest.mark.parametrize("carrier", CARRIERS)
    async def test_each_carrier_authenticates_on_both_protocols(self, alice, protocol, carrier):
        token = await sync_to_async(token_for)(alice)
        client, payload = client_with(token, carrier, protocol)
        ack = await client.connect(payload=payload)
        assert ack == {"type": "connection_ack", "payload": {"user": str(alice.pk)}}
        if protocol == "graphql-transport-ws":  # the legacy protocol carries subscriptions only
            assert await client.execute(ME) == {"data": {"me": {"username": "alice"}}}
        await client.close()

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    @pytest.mark.parametrize("carrier", CARRIERS)
    @pytest.mark.parametrize("bad", sorted(BAD_TOKENS))
    async def test_bad_token_is_refused_with_4403(self, alice, protocol, carrier, bad):
        token = await sync_to_async(BAD_TOKENS[bad])(alice)
        client, payload = client_with(token, carrier, protocol)
        await client.connect(payload=payload, init=False)
        await client.send({"type": "connection_init", "payload": payload})
        assert await client.receive_close(timeout=3) == 4403
        client.connected = False

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    async def test_malformed_authorization_is_refused(self, protocol, db):
        client = WSClient(protocol=protocol)
        await client.connect(init=False)
        await client.send({"type": "connection_init", "payload": {"Authorization": "Basic dXNlcjpwYXNz"}})
        assert await client.receive_close(timeout=3) == 4403
        client.connected = False

    async def test_connection_init_token_wins_over_the_handshake(self, alice, bob):
        token = await sync_to_async(token_for)(alice)
        client = WSClient(path="/graphql/?token=not-a-jwt")
        assert (await client.connect(payload={"authToken": token}))["payload"] == {"user": str(alice.pk)}
        await client.close()


@pytest.mark.django_db(transaction=True)
class TestAnonymous:
    async def test_anonymous_connection_is_accepted_but_gets_nothing(self, alice):
        client = WSClient()
        assert await client.connect() == {"type": "connection_ack", "payload": {"user": None}}
        assert await client.execute(ME) == {"data": {"me": None}}
        result = await client.execute(REVOKE_ALL_TOKENS)
        assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert result["data"] is None
        await client.close()

    async def test_legacy_anonymous_connection_is_acknowledged(self, db):
        client = WSClient(protocol="graphql-ws")
        assert (await client.connect())["type"] == "connection_ack"
        await client.close()

    async def test_mutations_over_the_socket_act_as_the_socket_user(self, alice):
        token = await sync_to_async(token_for)(alice)
        client = WSClient(token=token)
        await client.connect()
        result = await client.execute(CHANGE_PASSWORD)
        assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert result["errors"][0]["extensions"]["fields"] == {"oldPassword": ["Wrong password."]}
        await client.close()


REVOCATIONS = {
    "revokeAllTokens": ("mutation { revokeAllTokens { revoked } }", {}),
    "changePassword": (
        "mutation C($old: String, $new: String) { changePassword(oldPassword: $old, newPassword: $new) { token } }",
        {"old": "correct horse battery", "new": "a brand new passphrase 7"},
    ),
    "deleteAccount": (
        "mutation D($password: String) { deleteAccount(password: $password) { deletedId } }",
        {"password": "correct horse battery"},
    ),
}


@pytest.mark.django_db(transaction=True)
class TestRevocationClosesSockets:
    @pytest.mark.parametrize("protocol", PROTOCOLS)
    @pytest.mark.parametrize("mutation", sorted(REVOCATIONS))
    async def test_every_socket_of_the_user_closes_with_4403(self, agql, alice, bob, protocol, mutation):
        alice_token = await sync_to_async(token_for)(alice)
        phone, laptop = WSClient(token=alice_token, protocol=protocol), WSClient(token=alice_token, protocol=protocol)
        other = WSClient(token=await sync_to_async(token_for)(bob), protocol=protocol)
        for client in (phone, laptop, other):
            assert (await client.connect())["type"] == "connection_ack"
        query, variables = REVOCATIONS[mutation]
        body = await agql(query, variables, token=alice_token)
        assert "errors" not in body, body
        for client in (phone, laptop):
            assert await client.receive_close(timeout=3) == 4403
            client.connected = False
        assert await other.nothing()
        if protocol == "graphql-transport-ws":
            assert await other.execute(ME) == {"data": {"me": {"username": "bob"}}}
        await other.close()


TOKEN_AUTH = (
    "mutation Login($u: String, $p: String) { tokenAuth(username: $u, password: $p) { token user { username } } }"
)
ROOM_EVENTS = "subscription E($roomId: ID, $after: String) { roomEvents(roomId: $roomId, after: $after) { seq } }"
SEND_MESSAGE = 'mutation Send($roomId: ID!) { sendMessage(input: {roomId: $roomId, text: "as someone else"}) { id } }'


async def run(client: WSClient, query: str, variables: dict | None = None) -> dict:
    """A query or mutation over the socket: its result, or ``{"refused": ...}`` for an
    operation the protocol refuses (the legacy protocol runs no mutations)."""
    op = await client.subscribe(query, variables)
    message = await client.receive()
    assert message.get("id") == op, message
    if message["type"] == "error":
        return {"refused": message["payload"]}
    assert message["type"] in {"next", "data"}, message
    assert (await client.receive())["type"] == "complete"
    return message["payload"]


def logged_in_as(result: dict, username: str) -> bool:
    """The log-in answered ``username``'s tokens, or the protocol refused it."""
    return "refused" in result or result["data"]["tokenAuth"]["user"] == {"username": username}


@pytest.mark.django_db(transaction=True)
class TestOneIdentityPerSocket:
    """A socket is whoever its connection_init (or handshake) said, for its whole
    life: a log-in sent over it answers its tokens and changes nobody. (The legacy
    protocol runs subscriptions only, so there the log-in is refused outright.)"""

    @pytest.fixture
    def bobs_room(self, bob):
        from chat.services import rooms

        return rooms.create_room(bob, "bob's", is_private=True)

    async def who(self, client: WSClient, protocol: str, bobs_room) -> str | None:
        """Who the socket is, as its operations see it: ``me`` where queries run, and
        whether it may replay the events of a room only bob may see."""
        replay = {"roomId": gid("Room", bobs_room.pk), "after": encode_cursor({bobs_room.pk: 0})}
        op = await client.subscribe(ROOM_EVENTS, replay)
        message = await client.receive()
        if message["type"] in {"next", "data"} and message["payload"].get("data"):
            await client.stop(op)
            seen = "bob"
        else:
            error = await subscription_error(client, op, first=message)
            seen = {"UNAUTHENTICATED": None, "NOT_FOUND": "someone"}[error["extensions"]["code"]]
        if protocol == "graphql-transport-ws":
            me = (await run(client, ME))["data"]["me"]
            return me and me["username"]
        return seen

    @pytest.mark.parametrize(("protocol", "code"), [("graphql-transport-ws", 4429), ("graphql-ws", 4403)])
    async def test_a_second_connection_init_closes_the_socket(self, protocol, code, alice, bob):
        client = WSClient(token=await sync_to_async(token_for)(alice), protocol=protocol)
        assert (await client.connect())["type"] == "connection_ack"
        await client.send({"type": "connection_init", "payload": {"authToken": await sync_to_async(token_for)(bob)}})
        assert await client.receive_close() == code

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    async def test_a_login_over_an_anonymous_socket_changes_nothing(self, protocol, room, bob, bobs_room):
        client = WSClient(protocol=protocol)
        assert (await client.connect())["type"] == "connection_ack"
        assert logged_in_as(await run(client, TOKEN_AUTH, {"u": "bob", "p": "correct horse battery"}), "bob")
        assert await self.who(client, protocol, bobs_room) is None
        sent = await run(client, SEND_MESSAGE, {"roomId": gid("Room", room.pk)})
        assert "refused" in sent or sent["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert not await sync_to_async(room.messages.exists)()
        await client.close()

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    @pytest.mark.parametrize("mutation", ["revokeAllTokens", "changePassword"])
    async def test_a_login_as_someone_else_neither_switches_nor_escapes_revocation(
        self, agql, protocol, mutation, alice, bob, bobs_room
    ):
        alice_token = await sync_to_async(token_for)(alice)
        client = WSClient(token=alice_token, protocol=protocol)
        assert (await client.connect())["type"] == "connection_ack"
        assert logged_in_as(await run(client, TOKEN_AUTH, {"u": "bob", "p": "correct horse battery"}), "bob")
        alice_is = "alice" if protocol == "graphql-transport-ws" else "someone"
        assert await self.who(client, protocol, bobs_room) == alice_is

        # Revoking bob, whose tokens the socket obtained, leaves the socket (alice's) open...
        query, variables = REVOCATIONS[mutation]
        assert "errors" not in await agql(query, variables, user=bob)
        assert await client.nothing(0.5)
        assert await self.who(client, protocol, bobs_room) == alice_is
        # ... and revoking alice, whose socket it is, closes it.
        assert "errors" not in await agql(query, variables, token=alice_token)
        assert await client.receive_close(timeout=3) == 4403


# --- Under a real daphne server -----------------------------------------------------


@pytest.fixture(scope="module")
def daphne_server(tmp_path_factory):
    """``daphne backend.asgi:application`` on a free port with a fresh SQLite file."""
    with migrated_daphne(tmp_path_factory.mktemp("daphne"), timeout=15) as server:
        yield f"ws://127.0.0.1:{server.port}/graphql/"


async def _init_and_wait_close(url: str, protocol: str, payload: dict) -> tuple[list[dict], int | None]:
    """Connect, send connection_init, collect messages until the server closes; (messages, close code)."""
    messages = []
    async with websockets.connect(url, subprotocols=[protocol], open_timeout=3) as socket_:
        assert socket_.subprotocol == protocol
        await socket_.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            async with asyncio.timeout(3):
                async for raw in socket_:
                    messages.append(json.loads(raw))
        except websockets.ConnectionClosed:
            pass  # closed with a code other than 1000/1001: what a refusal is
        except TimeoutError:
            pytest.fail(f"{protocol}: the server did not close the socket within 3 s; got {messages}")
        return messages, socket_.close_code


@pytest.mark.slow
class TestUnderDaphne:
    async def test_bad_token_really_closes_the_socket_on_both_protocols(self, daphne_server):
        messages, code = await _init_and_wait_close(daphne_server, "graphql-ws", {"authToken": "not-a-jwt"})
        assert code == 4403
        assert messages == [
            {"type": "connection_error", "payload": {"message": "Invalid token.", "code": "UNAUTHENTICATED"}}
        ]

        messages, code = await _init_and_wait_close(daphne_server, "graphql-transport-ws", {"authToken": "not-a-jwt"})
        assert code == 4403
        assert messages == []

    async def test_anonymous_legacy_connection_is_acknowledged(self, daphne_server):
        async with websockets.connect(daphne_server, subprotocols=["graphql-ws"], open_timeout=3) as socket_:
            await socket_.send(json.dumps({"type": "connection_init", "payload": {}}))
            async with asyncio.timeout(3):
                message = json.loads(await socket_.recv())
            assert message == {"type": "connection_ack", "payload": {"user": None}}


# --- Each new operation re-checks that the socket's user may still act --------------------

SEND = 'mutation S($roomId: ID!) { sendMessage(input: {roomId: $roomId, text: "still here?"}) { id } }'
ROOM_EVENTS = "subscription E($roomId: ID) { roomEvents(roomId: $roomId) { cursor } }"
SIGNED_OUT = {
    # Changes made without save(), so no revocation message reaches the socket:
    # only the check on the next operation can notice them.
    "deactivated": lambda user: User.objects.filter(pk=user.pk).update(is_active=False),
    "revoked": lambda user: User.objects.filter(pk=user.pk).update(token_version=user.token_version + 1),
}


@pytest.mark.django_db(transaction=True)
class TestOperationsRecheckTheUser:
    @pytest.mark.parametrize("protocol", PROTOCOLS)
    @pytest.mark.parametrize("how", sorted(SIGNED_OUT))
    async def test_the_next_operation_closes_the_socket_with_4403(self, alice, room, protocol, how):
        client = WSClient(token=await sync_to_async(token_for)(alice), protocol=protocol)
        assert (await client.connect())["type"] == "connection_ack"
        await sync_to_async(SIGNED_OUT[how])(alice)
        before = await sync_to_async(Message.objects.count)()
        if protocol == "graphql-transport-ws":
            await client.subscribe(SEND, {"roomId": gid("Room", room.pk)})
        else:  # the legacy protocol carries subscriptions only
            await client.subscribe(ROOM_EVENTS, {"roomId": gid("Room", room.pk)})
        assert await client.receive_close(timeout=3) == 4403
        assert await sync_to_async(Message.objects.count)() == before

    async def test_operations_of_a_user_still_signed_in_run(self, alice, room):
        async with WSClient(token=await sync_to_async(token_for)(alice)) as client:
            await client.connect()
            for _ in range(2):
                result = await client.execute(SEND, {"roomId": gid("Room", room.pk)})
                assert "errors" not in result, result
