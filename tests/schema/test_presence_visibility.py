"""Presence has one audience: a user's online state and last-seen time are
visible to themself and to the members of the rooms they belong to, whether
asked for (`user(id) { isOnline lastSeenAt }`, `users`, `node`, `me`) or pushed
(`PresenceChanged`)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from chat.services import rooms as room_services
from tests.schema.test_subscriptions import PROTOCOLS, ROOM_EVENTS, connect, rid, uid, until_listening

pytestmark = pytest.mark.django_db(transaction=True)

USER = "query U($id: ID!) { user(id: $id) { username isOnline lastSeenAt } }"
NODE = "query N($id: ID!) { node(id: $id) { ... on User { isOnline lastSeenAt } } }"
USERS = "query Us($s: String) { users(search: $s) { edges { node { username isOnline lastSeenAt } } } }"
ME = "query Me { me { isOnline lastSeenAt } }"
JOIN_ROOM = "mutation Join($roomId: ID!) { joinRoom(roomId: $roomId) { id } }"
LEAVE_ROOM = "mutation Leave($roomId: ID!) { leaveRoom(roomId: $roomId) }"


async def presence_seen_by(api, viewer, user) -> list[tuple]:
    """(isOnline, has lastSeenAt) of ``user`` as ``viewer`` sees it through each query."""
    by_user = (await api(USER, {"id": uid(user)}, viewer))["user"]
    by_node = (await api(NODE, {"id": uid(user)}, viewer))["node"]
    [listed] = [e["node"] for e in (await api(USERS, {"s": user.username}, viewer))["users"]["edges"]]
    return [(seen["isOnline"], seen["lastSeenAt"] is not None) for seen in (by_user, by_node, listed)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_presence_is_for_people_who_share_a_room(protocol, room, alice, bob, carol, api):
    """``room``: alice's, bob has joined it, carol has not."""
    carol_ws = await connect(carol, protocol)
    carol_op = await carol_ws.subscribe(ROOM_EVENTS)
    bob_ws = await connect(bob, protocol)
    bob_op = await bob_ws.subscribe(ROOM_EVENTS, {"roomId": rid(room)})
    await until_listening(f"room.{room.pk}")

    alice_ws = await connect(alice, protocol)  # alice comes online
    event = (await bob_ws.next(bob_op))["data"]["roomEvents"]
    assert (event["__typename"], event["user"], event["online"]) == ("PresenceChanged", {"username": "alice"}, True)
    assert await carol_ws.nothing(0.5)
    assert await presence_seen_by(api, bob, alice) == [(True, True)] * 3
    assert await presence_seen_by(api, carol, alice) == [(False, False)] * 3
    assert (await api(ME, {}, alice))["me"] == {
        "isOnline": True,
        "lastSeenAt": (await api(NODE, {"id": uid(alice)}, alice))["node"]["lastSeenAt"],
    }

    # Sharing a room opens both paths; leaving it closes both.
    await api(JOIN_ROOM, {"roomId": rid(room)}, carol)
    assert await presence_seen_by(api, carol, alice) == [(True, True)] * 3
    await api(LEAVE_ROOM, {"roomId": rid(room)}, carol)
    assert await presence_seen_by(api, carol, alice) == [(False, False)] * 3
    joined, left = (await carol_ws.next(carol_op))["data"], (await carol_ws.next(carol_op))["data"]
    assert [joined["roomEvents"]["__typename"], left["roomEvents"]["__typename"]] == ["MemberJoined", "MemberLeft"]

    await alice_ws.close()  # alice goes offline: bob is told, carol is not
    while True:
        event = (await bob_ws.next(bob_op))["data"]["roomEvents"]
        if event["__typename"] == "PresenceChanged":
            break
    assert (event["user"], event["online"]) == ({"username": "alice"}, False)
    assert await carol_ws.nothing(0.5)
    await bob_ws.close()
    await carol_ws.close()


async def test_a_deleted_room_shares_no_presence(room, alice, bob, api):
    await sync_to_async(room_services.delete_room)(alice, room.pk)
    assert await presence_seen_by(api, bob, alice) == [(False, False)] * 3
    assert await presence_seen_by(api, alice, bob) == [(False, False)] * 3
