"""Real-time over real WebSockets, on both protocols: roomEvents, messageAdded,
notifications, typing and presence, resume, and groups left behind."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.db import OperationalError, close_old_connections
from django.test import AsyncClient
from prometheus_client import REGISTRY

from chat.models import Message, Room, User
from chat.services import messages as message_services
from chat.services import rooms as room_services
from chat.tokens import REVOCATION_GROUP
from schema.events.types import clear_caches
from schema.global_ids import encode_id
from tests.clients import WSClient, group_size, token_for, until_listening

pytestmark = pytest.mark.django_db(transaction=True)

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]

ROOM_EVENTS = """
subscription RoomEvents($roomId: ID, $after: String) {
  roomEvents(roomId: $roomId, after: $after) {
    __typename cursor seq room { id name }
    ... on MessageAdded { message { id text sender { username } } }
    ... on MessageEdited { message { id text editedAt } }
    ... on MessageDeleted { message { id text isDeleted } }
    ... on MemberJoined { user { username } role by { username } }
    ... on MemberLeft { user { username } reason by { username } }
    ... on RoomUpdated { room { name topic } }
    ... on TypingChanged { user { username } typing }
    ... on PresenceChanged { user { username } online }
    ... on ReadReceipt { user { username } messageId }
  }
}
"""

MESSAGE_ADDED = """
subscription MessageAdded($roomId: ID) { messageAdded(roomId: $roomId) { seq room { id } message { text } } }
"""

NOTIFICATIONS = """
subscription Notifications { notifications { kind room { id name } by { username } message { text } } }
"""

SEND_MESSAGE = """
mutation Send($roomId: ID!, $text: String!) { sendMessage(input: {roomId: $roomId, text: $text}) { id } }
"""
EDIT_MESSAGE = "mutation Edit($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { id } }"
DELETE_MESSAGE = "mutation Delete($id: ID!) { deleteMessage(id: $id) { id } }"
JOIN_ROOM = "mutation Join($roomId: ID!) { joinRoom(roomId: $roomId) { id } }"
LEAVE_ROOM = "mutation Leave($roomId: ID!) { leaveRoom(roomId: $roomId) }"
ADD_MEMBER = "mutation Add($roomId: ID!, $userId: ID!) { addMember(roomId: $roomId, userId: $userId) { id } }"
REMOVE_MEMBER = "mutation Remove($roomId: ID!, $userId: ID!) { removeMember(roomId: $roomId, userId: $userId) { id } }"
DELETE_ROOM = "mutation DeleteRoom($roomId: ID!) { deleteRoom(roomId: $roomId) }"
START_DIRECT_CHAT = "mutation Direct($userId: ID!) { startDirectChat(userId: $userId) { id } }"
SET_TYPING = "mutation Typing($roomId: ID!, $typing: Boolean!) { setTyping(roomId: $roomId, typing: $typing) }"
IS_ONLINE = "query Online($id: ID!) { node(id: $id) { ... on User { username isOnline lastSeenAt } } }"


def rid(room: Room) -> str:
    return encode_id("Room", room.pk)


def uid(user: User) -> str:
    return encode_id("User", user.pk)


async def connect(user: User | None, protocol: str) -> WSClient:
    client = WSClient(token=await sync_to_async(token_for)(user) if user else None, protocol=protocol)
    ack = await client.connect()
    assert ack["type"] == "connection_ack", ack
    return client


async def events_of(client: WSClient, op_id: str, n: int, timeout: float = 5) -> list[dict]:
    """The next ``n`` roomEvents payloads of ``op_id`` (skips presence, which depends on timing)."""
    result = []
    while len(result) < n:
        payload = await client.next(op_id, timeout=timeout)
        assert "errors" not in payload, payload
        event = next(iter(payload["data"].values()))
        if event.get("__typename") == "PresenceChanged":
            continue
        result.append(event)
    return result


async def silent(client: WSClient, timeout: float = 0.4) -> None:
    """Nothing but presence arrives."""
    while not await client.nothing(timeout):
        message = await client.receive()
        payload = message.get("payload") or {}
        event = next(iter((payload.get("data") or {}).values()), None) or {}
        assert event.get("__typename") == "PresenceChanged", message


async def subscription_error(client: WSClient, op_id: str, first: dict | None = None) -> dict:
    """The error that ends a refused subscription, on either protocol (``first``: its
    first message, if already received)."""
    message = first or await client.receive()
    if message["type"] == "error":  # graphql-transport-ws: errors before the stream starts
        return message["payload"][0]
    assert message["type"] in {"next", "data"}, message
    assert message["payload"].get("data") is None, message
    error = message["payload"]["errors"][0]
    done = await client.receive()
    assert done["type"] == "complete", done
    return error


def texts(events: list[dict]) -> list[str]:
    return [e["message"]["text"] for e in events]


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestDelivery:
    async def test_members_get_the_rooms_events_and_non_members_nothing(self, protocol, room, alice, bob, carol, api):
        bob_ws, carol_ws = await connect(bob, protocol), await connect(carol, protocol)
        bob_op = await bob_ws.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await carol_ws.subscribe(ROOM_EVENTS)  # all of carol's rooms: none
        await until_listening(f"room.{room.pk}")
        await until_listening(f"user.{carol.pk}")

        await api(SEND_MESSAGE, {"roomId": rid(room), "text": "hello"}, alice)

        [event] = await events_of(bob_ws, bob_op, 1)
        assert event["__typename"] == "MessageAdded"
        assert event["seq"] == 3  # alice joined (1), bob joined (2), the message (3)
        assert event["room"] == {"id": rid(room), "name": "lobby"}
        assert event["message"]["text"] == "hello" and event["message"]["sender"] == {"username": "alice"}
        assert event["cursor"].startswith("r1.")
        await silent(carol_ws)
        await bob_ws.close()
        await carol_ws.close()

    async def test_non_member_of_a_private_room_is_refused_not_found(self, protocol, alice, carol):
        private = await sync_to_async(room_services.create_room)(alice, "secret", is_private=True)
        client = await connect(carol, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(private)})
        error = await subscription_error(client, op)
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert await group_size(f"room.{private.pk}") == 0
        await client.close()

    async def test_anonymous_is_refused_unauthenticated(self, protocol, room):
        client = await connect(None, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        error = await subscription_error(client, op)
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        op = await client.subscribe(NOTIFICATIONS)
        assert (await subscription_error(client, op))["extensions"]["code"] == "UNAUTHENTICATED"
        await client.close()

    async def test_edits_and_deletions(self, protocol, room, alice, bob, api):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"room.{room.pk}")
        sent = (await api(SEND_MESSAGE, {"roomId": rid(room), "text": "frist"}, alice))["sendMessage"]
        await api(EDIT_MESSAGE, {"id": sent["id"], "text": "first"}, alice)
        await api(DELETE_MESSAGE, {"id": sent["id"]}, alice)

        added, edited, deleted = await events_of(client, op, 3)
        assert [added["__typename"], edited["__typename"], deleted["__typename"]] == [
            "MessageAdded",
            "MessageEdited",
            "MessageDeleted",
        ]
        assert edited["message"]["id"] == sent["id"] and edited["message"]["text"] == "first"
        assert edited["message"]["editedAt"] is not None
        assert deleted["message"] == {"id": sent["id"], "text": "", "isDeleted": True}
        assert [added["seq"], edited["seq"], deleted["seq"]] == [3, 4, 5]
        await client.close()

    async def test_message_added_is_the_simple_form(self, protocol, room, alice, bob, api):
        client = await connect(bob, protocol)
        op = await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        sent = (await api(SEND_MESSAGE, {"roomId": rid(room), "text": "one"}, alice))["sendMessage"]
        await api(EDIT_MESSAGE, {"id": sent["id"], "text": "one!"}, alice)
        await api(SEND_MESSAGE, {"roomId": rid(room), "text": "two"}, alice)
        first, second = await client.next(op), await client.next(op)
        assert first["data"]["messageAdded"] == {"seq": 3, "room": {"id": rid(room)}, "message": {"text": "one"}}
        assert second["data"]["messageAdded"]["message"] == {"text": "two"}
        assert await client.nothing(0.3)
        await client.close()

    async def test_messages_of_a_deleted_account_render_sender_null(self, protocol, room, alice, bob, api):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await api(SEND_MESSAGE, {"roomId": rid(room), "text": "hello"}, alice)
        [hello] = await events_of(client, op, 1)
        assert hello["message"]["sender"] == {"username": "alice"}
        await api(SEND_MESSAGE, {"roomId": rid(room), "text": "bye"}, alice)
        await events_of(client, op, 1)
        await client.close()
        await sync_to_async(User.objects.filter(pk=alice.pk).delete)()  # what deleteAccount does
        clear_caches()  # what the caches' 10-second time to live does

        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room), "after": hello["cursor"]})
        [bye] = await events_of(client, op, 1)
        assert bye["message"]["text"] == "bye" and bye["message"]["sender"] is None
        await client.close()

    async def test_room_fields_beyond_the_snapshot_are_fetched_for_the_subscriber(self, protocol, room, alice, bob):
        query = "subscription S($roomId: ID) { messageAdded(roomId: $roomId) { room { name memberCount myRole } } }"
        client = await connect(bob, protocol)
        op = await client.subscribe(query, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await sync_to_async(message_services.send_message)(alice, room.pk, "hi")
        payload = await client.next(op)
        assert payload == {"data": {"messageAdded": {"room": {"name": "lobby", "memberCount": 2, "myRole": "MEMBER"}}}}
        await client.close()

    async def test_rest_sent_messages_are_delivered(self, protocol, room, alice, bob):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        token = await sync_to_async(token_for)(alice)
        response = await AsyncClient().post(
            f"/api/rooms/{rid(room)}/messages/", {"text": "via REST"}, headers={"Authorization": f"JWT {token}"}
        )
        assert response.status_code == 201, response.content
        [event] = await events_of(client, op, 1)
        assert event["__typename"] == "MessageAdded" and event["message"]["text"] == "via REST"
        await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestFollowingMembership:
    async def test_rooms_joined_while_subscribed_are_picked_up(self, protocol, alice, bob, carol, api):
        public = await sync_to_async(room_services.create_room)(alice, "public")
        private = await sync_to_async(room_services.create_room)(alice, "private", is_private=True)
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"user.{bob.pk}")

        await api(JOIN_ROOM, {"roomId": rid(public)}, bob)
        [joined] = await events_of(client, op, 1)
        assert joined["__typename"] == "MemberJoined" and joined["room"]["id"] == rid(public)
        assert joined["user"] == {"username": "bob"} and joined["by"] is None and joined["role"] == "MEMBER"
        await api(SEND_MESSAGE, {"roomId": rid(public), "text": "in public"}, alice)
        assert texts(await events_of(client, op, 1)) == ["in public"]

        await api(ADD_MEMBER, {"roomId": rid(private), "userId": uid(bob)}, alice)
        [added] = await events_of(client, op, 1)
        assert added["__typename"] == "MemberJoined" and added["room"]["id"] == rid(private)
        assert added["by"] == {"username": "alice"}
        await api(SEND_MESSAGE, {"roomId": rid(private), "text": "in private"}, alice)
        assert texts(await events_of(client, op, 1)) == ["in private"]

        direct = (await api(START_DIRECT_CHAT, {"userId": uid(bob)}, carol))["startDirectChat"]
        # From bob's own join on: carol's join came before it.
        [joined] = await events_of(client, op, 1)
        assert (joined["__typename"], joined["user"]["username"]) == ("MemberJoined", "bob")
        assert joined["by"] == {"username": "carol"} and joined["room"]["id"] == direct["id"]
        await api(SEND_MESSAGE, {"roomId": direct["id"], "text": "hi bob"}, carol)
        assert texts(await events_of(client, op, 1)) == ["hi bob"]
        await silent(client)
        await client.close()

    @pytest.mark.parametrize("how", ["leave", "removed", "deleted"])
    async def test_a_room_left_removed_or_deleted_is_dropped_after_its_last_event(
        self, protocol, how, room, alice, bob, api
    ):
        other = await sync_to_async(room_services.create_room)(alice, "other")
        await sync_to_async(room_services.join_room)(bob, other.pk)
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"room.{room.pk}")

        if how == "leave":
            await api(LEAVE_ROOM, {"roomId": rid(room)}, bob)
        elif how == "removed":
            await api(REMOVE_MEMBER, {"roomId": rid(room), "userId": uid(bob)}, alice)
        else:
            await api(DELETE_ROOM, {"roomId": rid(room)}, alice)
        [last] = await events_of(client, op, 1)
        if how == "deleted":
            assert last["__typename"] == "RoomDeleted"
        else:
            assert last["__typename"] == "MemberLeft" and last["user"] == {"username": "bob"}
            assert last["reason"] == ("LEFT" if how == "leave" else "REMOVED")
        assert last["room"]["id"] == rid(room)
        assert await group_size(f"room.{room.pk}") == 0
        if how != "deleted":
            await api(SEND_MESSAGE, {"roomId": rid(room), "text": "not for bob"}, alice)
        await api(SEND_MESSAGE, {"roomId": rid(other), "text": "still for bob"}, alice)
        [event] = await events_of(client, op, 1)
        assert event["message"]["text"] == "still for bob"
        await silent(client)
        await client.close()

    async def test_a_one_room_subscription_completes_after_leaving(self, protocol, room, alice, bob, api):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await api(LEAVE_ROOM, {"roomId": rid(room)}, bob)
        [last] = await events_of(client, op, 1)
        assert last["__typename"] == "MemberLeft"
        done = await client.receive()
        assert done == {"type": "complete", "id": op}
        await client.close()


async def send_concurrently(room: Room, senders: list[User], per_sender: int) -> list[str]:
    """Send ``per_sender`` messages from each sender at once, each in its own thread."""

    def send(sender: User, text: str) -> None:
        # pytest-django's in-memory SQLite (shared cache) answers a concurrent
        # writer "table is locked" at once instead of waiting: retry like a client.
        for _ in range(200):
            try:
                message_services.send_message(sender, room.pk, text)
                return
            except OperationalError as error:
                if "locked" not in str(error):
                    raise
                time.sleep(0.005)
        raise AssertionError("could not send")

    def run(sender: User):
        try:
            for i in range(per_sender):
                send(sender, f"{sender.username}-{i}")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(s,)) for s in senders]
    await sync_to_async(lambda: [t.start() for t in threads] and [t.join() for t in threads])()
    return [f"{s.username}-{i}" for s in senders for i in range(per_sender)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestResume:
    async def test_every_missed_message_once_and_in_order(self, protocol, settings, room, alice, bob, carol):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "send_message": (1000, 10)}
        await sync_to_async(room_services.join_room)(carol, room.pk)
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"room.{room.pk}")
        await sync_to_async(message_services.send_message)(alice, room.pk, "before")
        [before] = await events_of(client, op, 1)
        await client.close()

        sent = await send_concurrently(room, [alice, carol], 50)

        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"after": before["cursor"]})
        replayed = await events_of(client, op, 100)
        assert sorted(texts(replayed)) == sorted(sent)  # every one, once
        assert [e["seq"] for e in replayed] == list(range(before["seq"] + 1, before["seq"] + 101))
        stored = await sync_to_async(list)(
            Message.objects.filter(room=room).exclude(text="before").order_by("pk").values_list("text", flat=True)
        )
        for name in ("alice", "carol"):  # each sender's order kept
            assert [t for t in texts(replayed) if t.startswith(name)] == [f"{name}-{i}" for i in range(50)]
        assert set(stored) == set(sent)
        # Then live, with no gap and no duplicate.
        await sync_to_async(message_services.send_message)(alice, room.pk, "after")
        [after] = await events_of(client, op, 1)
        assert after["message"]["text"] == "after" and after["seq"] == before["seq"] + 101
        await silent(client)
        await client.close()

    async def test_resume_while_others_are_sending(self, protocol, settings, room, alice, bob, carol):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "send_message": (1000, 10)}
        await sync_to_async(room_services.join_room)(carol, room.pk)
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await sync_to_async(message_services.send_message)(alice, room.pk, "start")
        [start] = await events_of(client, op, 1)
        await client.close()
        await send_concurrently(room, [alice], 10)

        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room), "after": start["cursor"]})
        sending = asyncio.ensure_future(send_concurrently(room, [alice, carol], 15))
        received = await events_of(client, op, 40, timeout=15)
        await sending
        assert [e["seq"] for e in received] == list(range(start["seq"] + 1, start["seq"] + 41))
        await silent(client)
        await client.close()

    async def test_rooms_joined_since_the_cursor_replay_from_the_join(self, protocol, room, alice, bob):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"room.{room.pk}")
        await sync_to_async(message_services.send_message)(alice, room.pk, "seen")
        [seen] = await events_of(client, op, 1)
        await client.close()

        later = await sync_to_async(room_services.create_room)(alice, "later")
        await sync_to_async(message_services.send_message)(alice, later.pk, "before bob joined")
        await sync_to_async(room_services.join_room)(bob, later.pk)
        await sync_to_async(message_services.send_message)(alice, later.pk, "after bob joined")
        await sync_to_async(room_services.leave_room)(bob, room.pk)
        await sync_to_async(message_services.send_message)(alice, room.pk, "after bob left")

        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"after": seen["cursor"]})
        joined, message = await events_of(client, op, 2)
        assert (joined["__typename"], joined["room"]["name"]) == ("MemberJoined", "later")
        assert message["message"]["text"] == "after bob joined"
        await silent(client)
        await client.close()

    async def test_a_bad_cursor_is_bad_user_input(self, protocol, room, bob):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"after": "nonsense"})
        error = await subscription_error(client, op)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        await client.close()


class DroppingLayer:
    """Makes the channel layer lose chosen group messages, as channels_redis does under load."""

    def __init__(self, monkeypatch, drop):
        layer = get_channel_layer()
        original = layer.group_send
        self.dropped = []

        async def group_send(group, message):
            if message.get("type") == "chat.event" and drop(message):
                self.dropped.append(message["seq"])
                return
            await original(group, message)

        monkeypatch.setattr(layer, "group_send", group_send)


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestGapFilling:
    async def test_lost_messages_are_filled_in_order_exactly_once(self, protocol, monkeypatch, room, alice, bob):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"room.{room.pk}")
        layer = DroppingLayer(monkeypatch, lambda m: m["seq"] % 3 == 0)  # every third
        fills_before = REGISTRY.get_sample_value("chat_gap_fills_total")
        for i in range(12):
            await sync_to_async(message_services.send_message)(alice, room.pk, f"m{i}")
        received = await events_of(client, op, 12)
        assert texts(received) == [f"m{i}" for i in range(12)]
        assert [e["seq"] for e in received] == list(range(3, 15))
        assert layer.dropped  # it really lost some
        assert REGISTRY.get_sample_value("chat_gap_fills_total") > fills_before  # and /metrics says so
        await silent(client)
        await client.close()

    async def test_a_lost_last_message_arrives_within_the_check_interval(
        self, protocol, settings, monkeypatch, room, alice, bob
    ):
        settings.REALTIME_CHECK_INTERVAL = 0.5
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"room.{room.pk}")
        DroppingLayer(monkeypatch, lambda m: True)
        await sync_to_async(message_services.send_message)(alice, room.pk, "lost")
        [event] = await events_of(client, op, 1, timeout=3)
        assert event["message"]["text"] == "lost"
        await silent(client, 0.8)
        await client.close()

    async def test_a_lost_join_and_leave_are_repaired_by_the_check(self, protocol, settings, monkeypatch, alice, bob):
        settings.REALTIME_CHECK_INTERVAL = 0.5
        other = await sync_to_async(room_services.create_room)(alice, "other")
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"user.{bob.pk}")
        DroppingLayer(monkeypatch, lambda m: m["kind"] in {"MemberJoined", "MemberLeft"})
        await sync_to_async(room_services.join_room)(bob, other.pk)
        [joined] = await events_of(client, op, 1, timeout=3)
        assert joined["__typename"] == "MemberJoined" and joined["room"]["name"] == "other"
        await sync_to_async(room_services.leave_room)(bob, other.pk)
        [left] = await events_of(client, op, 1, timeout=3)
        assert left["__typename"] == "MemberLeft"
        await client.close()

    async def test_an_event_arriving_early_fills_the_gap_first(self, protocol, room, alice, bob):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")

        def record_without_publishing(n):
            from django.db import transaction

            from chat import events

            with transaction.atomic():
                locked = events.lock_room(room.pk)
                for i in range(n):
                    message = Message.objects.create(room=locked, sender=alice, text=f"quiet{i}")
                    last = events.record_event(
                        locked, "MessageAdded", {"message": events.message_snapshot(message)}, actor=alice
                    )
                transaction.get_connection().run_on_commit = []  # publish nothing
            return events.event_message(last)

        last = await sync_to_async(record_without_publishing)(3)
        await get_channel_layer().group_send(f"room.{room.pk}", last)  # only the last one arrives live
        received = await events_of(client, op, 3)
        assert texts(received) == ["quiet0", "quiet1", "quiet2"]
        await get_channel_layer().group_send(f"room.{room.pk}", last)  # a duplicate: dropped
        await silent(client)
        await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestTyping:
    async def test_others_see_typing_the_typist_does_not(self, protocol, room, alice, bob, carol, api, agql):
        bob_ws, alice_ws = await connect(bob, protocol), await connect(alice, protocol)
        bob_op = await bob_ws.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        alice_op = await alice_ws.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}", 2)
        assert await api(SET_TYPING, {"roomId": rid(room), "typing": True}, alice) == {"setTyping": True}
        [event] = await events_of(bob_ws, bob_op, 1)
        assert event["__typename"] == "TypingChanged" and event["seq"] is None
        assert event["user"] == {"username": "alice"} and event["typing"] is True
        assert event["room"]["id"] == rid(room)
        await silent(alice_ws)
        # Non-members cannot type into a room (and nobody hears anything).
        body = await agql(SET_TYPING, {"roomId": rid(room), "typing": True}, user=carol)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        await silent(bob_ws)
        assert alice_op
        await bob_ws.close()
        await alice_ws.close()

    async def test_typing_is_throttled_per_user_and_room(self, protocol, settings, room, alice, bob, agql, api):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "set_typing": (2, 10)}
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        for typing in (True, False):
            await api(SET_TYPING, {"roomId": rid(room), "typing": typing}, alice)
        body = await agql(SET_TYPING, {"roomId": rid(room), "typing": True}, user=alice)
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert [e["typing"] for e in await events_of(client, op, 2)] == [True, False]
        await silent(client)
        # Another room of alice's is not throttled by this one.
        other = await sync_to_async(room_services.create_room)(alice, "other")
        await api(SET_TYPING, {"roomId": rid(other), "typing": True}, alice)
        await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestPresence:
    async def test_online_while_a_socket_is_open_offline_after_the_last_closes(self, protocol, room, alice, bob, api):
        watcher = await connect(bob, protocol)
        op = await watcher.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        assert (await api(IS_ONLINE, {"id": uid(alice)}, bob))["node"]["isOnline"] is False

        first = await connect(alice, protocol)
        second = await connect(alice, protocol)
        payload = await watcher.next(op)
        event = payload["data"]["roomEvents"]
        assert event["__typename"] == "PresenceChanged" and event["user"] == {"username": "alice"}
        assert event["online"] is True
        assert await watcher.nothing(0.3)  # the second socket changes nothing
        node = (await api(IS_ONLINE, {"id": uid(alice)}, bob))["node"]
        assert node["isOnline"] is True and node["lastSeenAt"] is not None

        await first.close()
        assert await watcher.nothing(0.3)
        assert (await api(IS_ONLINE, {"id": uid(alice)}, bob))["node"]["isOnline"] is True
        await second.close()
        event = (await watcher.next(op))["data"]["roomEvents"]
        assert (event["__typename"], event["online"]) == ("PresenceChanged", False)
        assert (await api(IS_ONLINE, {"id": uid(alice)}, bob))["node"]["isOnline"] is False
        await watcher.close()

    async def test_a_crashed_process_does_not_leave_users_online(self, protocol, settings, alice):
        from chat.services import presence

        settings.PRESENCE_TTL = 0.3
        await sync_to_async(presence.connect_socket)(alice, "socket-of-a-process-that-died")
        assert await sync_to_async(presence.is_online)(alice.pk)
        await asyncio.sleep(0.4)  # no heartbeat, no close
        assert not await sync_to_async(presence.is_online)(alice.pk)


async def groups_of(*names: str) -> dict[str, int]:
    """Non-empty groups with their sizes: all of them on the in-memory layer,
    those of ``names`` on Redis."""
    layer = get_channel_layer()
    if hasattr(layer, "groups") and not isinstance(layer, RedisPubSubChannelLayer):
        return {group: len(channels) for group, channels in layer.groups.items() if channels}
    sizes = {name: await group_size(name) for name in names}
    return {name: size for name, size in sizes.items() if size}


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestGroups:
    async def test_no_group_left_behind_after_disconnect(self, protocol, room, alice, bob):
        client = await connect(bob, protocol)
        await client.subscribe(ROOM_EVENTS)
        await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await client.subscribe(MESSAGE_ADDED)
        await client.subscribe(NOTIFICATIONS)
        await until_listening(f"room.{room.pk}")
        await asyncio.sleep(0.2)
        names = (f"room.{room.pk}", f"user.{bob.pk}", REVOCATION_GROUP)
        # The process is in each group once, however many subscriptions need it.
        assert await groups_of(*names) == {f"room.{room.pk}": 1, f"user.{bob.pk}": 1, REVOCATION_GROUP: 1}
        await client.close()
        assert await groups_of(*names) == {}  # every group of the socket, the revocations' included

    async def test_closing_one_subscription_keeps_the_other(self, protocol, room, alice, bob):
        client = await connect(bob, protocol)
        all_rooms = await client.subscribe(ROOM_EVENTS)
        one_room = await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await asyncio.sleep(0.2)
        await client.stop(one_room)
        if protocol == "graphql-ws":
            assert (await client.receive()) == {"type": "complete", "id": one_room}
        await asyncio.sleep(0.1)
        assert await group_size(f"room.{room.pk}") == 1
        await sync_to_async(message_services.send_message)(alice, room.pk, "still here")
        [event] = await events_of(client, all_rooms, 1)
        assert event["message"]["text"] == "still here"
        await silent(client)
        await client.close()

    async def test_two_subscriptions_on_one_socket_see_only_their_rooms(self, protocol, room, alice, bob):
        other = await sync_to_async(room_services.create_room)(alice, "other")
        await sync_to_async(room_services.join_room)(bob, other.pk)
        client = await connect(bob, protocol)
        first = await client.subscribe(MESSAGE_ADDED, {"roomId": rid(room)})
        second = await client.subscribe(MESSAGE_ADDED, {"roomId": rid(other)})
        await until_listening(f"room.{other.pk}")
        await until_listening(f"room.{room.pk}")
        await sync_to_async(message_services.send_message)(alice, room.pk, "for first")
        await sync_to_async(message_services.send_message)(alice, other.pk, "for second")
        got = {}
        for _ in range(2):
            message = await client.receive()
            got.setdefault(message["id"], []).append(message["payload"]["data"]["messageAdded"]["message"]["text"])
        assert got == {first: ["for first"], second: ["for second"]}
        assert await client.nothing(0.3)
        await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestNotifications:
    async def test_mentions_additions_and_direct_chats(self, protocol, alice, bob, api):
        client = await connect(bob, protocol)
        op = await client.subscribe(NOTIFICATIONS)
        await until_listening(f"user.{bob.pk}")
        private = await sync_to_async(room_services.create_room)(alice, "private", is_private=True)
        await api(ADD_MEMBER, {"roomId": rid(private), "userId": uid(bob)}, alice)
        added = (await client.next(op))["data"]["notifications"]
        assert added == {
            "kind": "ADDED_TO_ROOM",
            "room": {"id": rid(private), "name": "private"},
            "by": {"username": "alice"},
            "message": None,
        }
        await api(SEND_MESSAGE, {"roomId": rid(private), "text": "hey @bob"}, alice)
        mentioned = (await client.next(op))["data"]["notifications"]
        assert mentioned["kind"] == "MENTIONED" and mentioned["message"] == {"text": "hey @bob"}
        direct = (await api(START_DIRECT_CHAT, {"userId": uid(bob)}, alice))["startDirectChat"]
        started = (await client.next(op))["data"]["notifications"]
        assert started["kind"] == "DIRECT_CHAT_STARTED" and started["room"]["id"] == direct["id"]
        assert await client.nothing(0.3)
        await client.close()


MEMBER_EVENTS = """
subscription MemberEvents($roomId: ID) {
  roomEvents(roomId: $roomId) {
    __typename seq room { id }
    ... on MemberRoleChanged { user { username } role by { username } }
    ... on MemberLeft { user { username } reason by { username } }
  }
}
"""
SET_MEMBER_ROLE = (
    "mutation Role($roomId: ID!, $userId: ID!, $role: RoomRole!) "
    "{ setMemberRole(roomId: $roomId, userId: $userId, role: $role) { id } }"
)
DELETE_ACCOUNT = "mutation DeleteAccount($password: String) { deleteAccount(password: $password) { deletedId } }"


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestMemberChanges:
    async def test_role_changes_and_handover_reach_subscribers(self, protocol, room, alice, bob, carol, api):
        await sync_to_async(room_services.join_room)(carol, room.pk)
        client = await connect(carol, protocol)
        op = await client.subscribe(MEMBER_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")

        await api(SET_MEMBER_ROLE, {"roomId": rid(room), "userId": uid(bob), "role": "ADMIN"}, alice)
        await api(SET_MEMBER_ROLE, {"roomId": rid(room), "userId": uid(carol), "role": "OWNER"}, alice)

        assert await events_of(client, op, 3) == [
            {
                "__typename": "MemberRoleChanged",
                "seq": 4,
                "room": {"id": rid(room)},
                "user": {"username": "bob"},
                "role": "ADMIN",
                "by": {"username": "alice"},
            },
            {
                "__typename": "MemberRoleChanged",
                "seq": 5,
                "room": {"id": rid(room)},
                "user": {"username": "carol"},
                "role": "OWNER",
                "by": {"username": "alice"},
            },
            {
                "__typename": "MemberRoleChanged",
                "seq": 6,
                "room": {"id": rid(room)},
                "user": {"username": "alice"},
                "role": "ADMIN",
                "by": {"username": "alice"},
            },
        ]
        await client.close()

    async def test_a_deleted_account_leaves_its_rooms_visibly(self, protocol, room, alice, bob, carol, agql):
        direct = await sync_to_async(room_services.start_direct_chat)(alice, bob.pk)
        await sync_to_async(message_services.send_message)(alice, room.pk, "bye all")
        client = await connect(bob, protocol)
        op = await client.subscribe(MEMBER_EVENTS)
        await until_listening(f"room.{room.pk}")
        await until_listening(f"room.{direct.pk}")

        body = await agql(DELETE_ACCOUNT, {"password": "correct horse battery"}, user=alice)
        assert body == {"data": {"deleteAccount": {"deletedId": uid(alice)}}}

        left = {"__typename": "MemberLeft", "user": {"username": "alice"}, "reason": "DELETED", "by": None}
        assert await events_of(client, op, 2) == [
            {**left, "seq": 4, "room": {"id": rid(room)}},
            {**left, "seq": 3, "room": {"id": rid(direct)}},
        ]
        await client.close()

        def after():
            return (
                list(room.memberships.values_list("user__username", "role")),
                list(Message.objects.filter(room=room).values_list("sender_id", "text")),
            )

        assert await sync_to_async(after)() == ([("bob", "owner")], [(None, "bye all")])
