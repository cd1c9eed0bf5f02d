"""Subscription events are executed once and shared by subscribers who see the
same thing; viewer-dependent selections stay per viewer (schema/live/shared_events.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, OperationType, build_schema, parse

from schema import schema
from schema.live.shared_events import VIEWER_INDEPENDENT, SharedEventExecutionContext, subscription_signature
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


# A schema where a viewer-dependent field shares its name with a shared one:
# `User.name` (what the viewer calls that user) beside `Room.name`.
NAMESAKES = build_schema(
    """
    type Query { ok: Boolean }
    type Subscription { roomEvents(roomId: ID): RoomEvent }
    interface RoomEvent { cursor: String seq: Int room: Room }
    type MemberJoined implements RoomEvent { cursor: String seq: Int room: Room user: User }
    type Room { id: ID name: String }
    type User { id: ID username: String name: String }
    """
)


def signature_for(document: str, user_pk: int) -> tuple:
    parsed = parse(document)
    [operation] = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)}
    return subscription_signature(NAMESAKES, operation, fragments, {}, SimpleNamespace(pk=user_pk))


@pytest.mark.parametrize(
    ("selection", "shared"),
    [
        ("cursor seq room { id name }", True),
        ("... on MemberJoined { user { id username } }", True),
        ("... on MemberJoined { user { name } }", False),
        ("...Joined", False),
        ("room { ... on Room { name } } ... on MemberJoined { user { username name } }", False),
    ],
)
def test_viewer_independence_is_decided_per_type_not_per_field_name(selection, shared):
    document = f"subscription {{ roomEvents {{ {selection} }} }} fragment Joined on MemberJoined {{ user {{ name }} }}"
    alice, bob = signature_for(document, 1), signature_for(document, 2)
    if shared:
        assert alice == bob and alice[-1] is None
    else:
        # Each viewer has a key of their own: nobody is served another's rendering.
        assert alice != bob and (alice[-1], bob[-1]) == (1, 2)


def test_every_listed_field_exists_on_its_type():
    for qualified in VIEWER_INDEPENDENT:
        type_name, field_name = qualified.split(".")
        graphql_type = schema._schema.get_type(type_name)
        assert graphql_type is not None and field_name in graphql_type.fields, qualified
