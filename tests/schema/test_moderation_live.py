"""Moderation in real time, over real WebSockets on both protocols: a ban ends
the banned user's subscriptions of the room with their MemberLeft (BANNED);
mutes reach subscribers as MemberMuted / MemberUnmuted; senderBlocked is
answered per viewer on live events too."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.models import Room, User
from chat.services import moderation
from chat.services import rooms as room_services
from schema.global_ids import encode_id
from tests.clients import WSClient, group_size, token_for, until_listening

pytestmark = pytest.mark.django_db(transaction=True)

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]

ROOM_EVENTS = """
subscription RoomEvents($roomId: ID) {
  roomEvents(roomId: $roomId) {
    __typename seq room { id }
    ... on MessageAdded { message { text sender { username } senderBlocked } }
    ... on MemberLeft { user { username } reason by { username } }
    ... on MemberMuted { user { username } by { username } until }
    ... on MemberUnmuted { user { username } by { username } }
  }
}
"""
SEND = "mutation Send($roomId: ID!, $text: String!) { sendMessage(input: {roomId: $roomId, text: $text}) { id } }"
BAN = 'mutation Ban($roomId: ID!, $userId: ID!) { banMember(roomId: $roomId, userId: $userId, reason: "spam") { id } }'
MUTE = "mutation Mute($roomId: ID!, $userId: ID!, $until: DateTime) { muteMember(roomId: $roomId, userId: $userId, until: $until) { id } }"
UNMUTE = "mutation Unmute($roomId: ID!, $userId: ID!) { unmuteMember(roomId: $roomId, userId: $userId) { id } }"


def rid(room: Room) -> str:
    return encode_id("Room", room.pk)


def uid(user: User) -> str:
    return encode_id("User", user.pk)


async def connect(user: User, protocol: str) -> WSClient:
    client = WSClient(token=await sync_to_async(token_for)(user), protocol=protocol)
    ack = await client.connect()
    assert ack["type"] == "connection_ack", ack
    return client


async def next_events(client: WSClient, op: str, n: int) -> list[dict]:
    """The next ``n`` events of ``op``, presence (timing-dependent) left out."""
    result = []
    while len(result) < n:
        payload = await client.next(op, timeout=10)
        assert "errors" not in payload, payload
        event = payload["data"]["roomEvents"]
        if event["__typename"] != "PresenceChanged":
            result.append(event)
    return result


async def nothing_more(client: WSClient) -> None:
    while not await client.nothing(0.5):
        message = await client.receive()
        event = ((message.get("payload") or {}).get("data") or {}).get("roomEvents") or {}
        assert event.get("__typename") == "PresenceChanged", message


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestBanEndsSubscriptions:
    async def test_the_all_rooms_subscription_stops_at_member_left_banned(self, protocol, room, alice, bob, api):
        other = await sync_to_async(room_services.create_room)(alice, "elsewhere")
        await sync_to_async(room_services.join_room)(bob, other.pk)
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS)
        await until_listening(f"room.{room.pk}")

        await api(BAN, {"roomId": rid(room), "userId": uid(bob)}, alice)
        [last] = await next_events(client, op, 1)
        assert last["__typename"] == "MemberLeft" and last["room"]["id"] == rid(room)
        assert (last["user"], last["reason"], last["by"]) == ({"username": "bob"}, "BANNED", {"username": "alice"})
        assert await group_size(f"room.{room.pk}") == 0

        await api(SEND, {"roomId": rid(room), "text": "not for bob"}, alice)
        await api(SEND, {"roomId": rid(other), "text": "still for bob"}, alice)
        [event] = await next_events(client, op, 1)
        assert event["message"]["text"] == "still for bob"
        await nothing_more(client)
        await client.close()

    async def test_a_one_room_subscription_completes_after_the_ban(self, protocol, room, alice, bob, api):
        client = await connect(bob, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await api(BAN, {"roomId": rid(room), "userId": uid(bob)}, alice)
        [last] = await next_events(client, op, 1)
        assert (last["__typename"], last["reason"]) == ("MemberLeft", "BANNED")
        assert await client.receive() == {"type": "complete", "id": op}
        await client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
class TestLiveModeration:
    async def test_mutes_reach_the_room(self, protocol, room, alice, bob, api):
        client = await connect(alice, protocol)
        op = await client.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
        await until_listening(f"room.{room.pk}")
        await api(MUTE, {"roomId": rid(room), "userId": uid(bob), "until": "2100-01-01T00:00:00+00:00"}, alice)
        await api(UNMUTE, {"roomId": rid(room), "userId": uid(bob)}, alice)
        muted, unmuted = await next_events(client, op, 2)
        assert muted["__typename"] == "MemberMuted" and muted["user"] == {"username": "bob"}
        assert muted["by"] == {"username": "alice"} and muted["until"].startswith("2100-01-01T00:00:00")
        assert unmuted["__typename"] == "MemberUnmuted" and unmuted["by"] == {"username": "alice"}
        await client.close()

    async def test_sender_blocked_is_answered_per_viewer(self, protocol, room, alice, bob, carol, api):
        await sync_to_async(room_services.join_room)(carol, room.pk)
        await sync_to_async(moderation.block_user)(alice, bob.pk)
        blocker, other = await connect(alice, protocol), await connect(carol, protocol)
        ops = [await blocker.subscribe(ROOM_EVENTS), await other.subscribe(ROOM_EVENTS)]
        await until_listening(f"room.{room.pk}", 2)
        await api(SEND, {"roomId": rid(room), "text": "hi all"}, bob)
        [seen_by_blocker] = await next_events(blocker, ops[0], 1)
        [seen_by_other] = await next_events(other, ops[1], 1)
        assert seen_by_blocker["message"] == {"text": "hi all", "sender": {"username": "bob"}, "senderBlocked": True}
        assert seen_by_other["message"]["senderBlocked"] is False
        await blocker.close()
        await other.close()
