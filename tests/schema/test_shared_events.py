"""Subscription events are executed once and shared by subscribers who see the
same thing; viewer-dependent selections stay per viewer (schema/live/shared_events.py)."""

from __future__ import annotations

import pytest
from graphql import OperationType

from schema import schema
from schema.live.shared_events import SharedEventExecutionContext
from schema.live.strawberry_adapter import StrawberryGraphQLCoreExecutionContext
from tests.schema.test_subscriptions import SEND_MESSAGE, connect, events_of, rid, until_listening

pytestmark = pytest.mark.django_db(transaction=True)

SHAREABLE = """
subscription Shared($roomId: ID) {
  roomEvents(roomId: $roomId) { __typename cursor seq room { id name } ... on MessageAdded { message { id text sender { username } } } }
}
"""

PER_VIEWER = """
subscription PerViewer($roomId: ID) {
  roomEvents(roomId: $roomId) { __typename seq room { id myRole } }
}
"""


@pytest.fixture
def executions(monkeypatch):
    """Counts the subscription events really executed (not served from the shared results)."""
    counted = []
    original = StrawberryGraphQLCoreExecutionContext.execute_operation

    def counting(self, *args, **kwargs):
        if self.operation.operation == OperationType.SUBSCRIPTION:
            counted.append(self.operation.name.value)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_operation", counting)
    return counted


def test_the_schema_uses_the_shared_execution_context():
    assert schema.execution_context_class is SharedEventExecutionContext


async def test_identical_subscribers_share_one_execution(room, alice, bob, carol, api, executions):
    await api("mutation J($r: ID!) { joinRoom(roomId: $r) { id } }", {"r": rid(room)}, carol)
    clients = [await connect(user, "graphql-transport-ws") for user in (alice, bob, carol)]
    ops = [await c.subscribe(SHAREABLE, {"roomId": rid(room)}) for c in clients]
    await until_listening(f"room.{room.pk}", 3)

    await api(SEND_MESSAGE, {"roomId": rid(room), "text": "once"}, alice)

    received = [(await events_of(c, op, 1))[0] for c, op in zip(clients, ops, strict=True)]
    assert received[0] == received[1] == received[2]
    assert received[0]["message"]["text"] == "once" and received[0]["message"]["sender"] == {"username": "alice"}
    assert executions.count("Shared") == 1
    for client in clients:
        await client.close()


async def test_viewer_dependent_fields_are_executed_per_viewer(room, alice, bob, api, executions):
    clients = [await connect(user, "graphql-transport-ws") for user in (alice, bob)]
    ops = [await c.subscribe(PER_VIEWER, {"roomId": rid(room)}) for c in clients]
    await until_listening(f"room.{room.pk}", 2)

    await api(SEND_MESSAGE, {"roomId": rid(room), "text": "mine?"}, alice)

    alice_event = (await events_of(clients[0], ops[0], 1))[0]
    bob_event = (await events_of(clients[1], ops[1], 1))[0]
    assert alice_event["room"] == {"id": rid(room), "myRole": "OWNER"}
    assert bob_event["room"] == {"id": rid(room), "myRole": "MEMBER"}
    assert executions.count("PerViewer") == 2
    for client in clients:
        await client.close()
