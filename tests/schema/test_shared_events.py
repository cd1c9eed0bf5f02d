"""Subscription events are executed once and shared by subscribers who see the
same thing; viewer-dependent selections stay per viewer (schema/live/shared_events.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from graphql import (
    FragmentDefinitionNode,
    GraphQLField,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    parse,
)

from schema import schema
from schema.live import fast_path
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


# The same namesakes in the served schema, end to end: a viewer-dependent field
# named like a listed viewer-independent field of another type (``User.name``
# beside ``Room.name``, ``Room.text`` beside ``Message.text``), subscribed to by
# three viewers with one document and one set of variables.
NAMESAKES_SERVED = {
    # the field: its selection in the document (%s: the field, or nothing) and where it is in an event
    "User.name": ("... on MessageAdded { message { text sender { username %s } } }", ("message", "sender", "name")),
    "Room.text": ("room { id name %s } ... on MessageAdded { message { text } }", ("room", "text")),
}


def seen_by(root, info) -> str:
    """What the viewer calls ``root``: a value no other viewer may be shown."""
    return f"{getattr(root, 'username', None) or root.name} as seen by {info.context.user.username}"


@pytest.fixture
def served_namesake(request, monkeypatch):
    """The served schema with ``request.param`` (``Type.field``) added for the test's
    duration, a viewer-dependent field (``seen_by``) named like a listed one."""
    type_name, field_name = request.param.split(".")
    fields = schema._schema.get_type(type_name).fields
    assert field_name not in fields and any(q.endswith(f".{field_name}") for q in VIEWER_INDEPENDENT)
    monkeypatch.setitem(fields, field_name, GraphQLField(GraphQLString, resolve=seen_by))
    return request.param


def pop_path(event: dict, path: tuple[str, ...]):
    """Take the value at ``path`` out of ``event``."""
    *parents, key = path
    for parent in parents:
        event = event[parent]
    return event.pop(key)


@pytest.fixture
def stored_executions(monkeypatch):
    """(operation name, event type) of each subscription event really executed;
    presence (ephemeral, executed per subscriber anyway) left out."""
    counted = []
    original = StrawberryGraphQLCoreExecutionContext.execute_operation

    def counting(self, *args, **kwargs):
        kind = type(self.root_value).__name__
        if self.operation.operation == OperationType.SUBSCRIPTION and kind != "PresenceChanged":
            counted.append((self.operation.name.value, kind))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_operation", counting)
    return counted


@pytest.fixture
def fast_deliveries(monkeypatch):
    """Whether the fast path sent each stored event it was offered (shared frames)."""
    sent: list[bool] = []
    original = fast_path.FastPath.deliver

    async def deliver(self, delivery):
        result = await original(self, delivery)
        if delivery.seq is not None:
            sent.append(result)
        return result

    monkeypatch.setattr(fast_path.FastPath, "deliver", deliver)
    return sent


@pytest.mark.parametrize("served_namesake", sorted(NAMESAKES_SERVED), indirect=True)
async def test_a_viewer_dependent_namesake_of_a_shared_field_is_rendered_per_viewer(
    served_namesake, room, alice, bob, carol, api, stored_executions, fast_deliveries
):
    namesake = served_namesake
    await api("mutation J($r: ID!) { joinRoom(roomId: $r) { id } }", {"r": rid(room)}, carol)
    selection, path = NAMESAKES_SERVED[namesake]
    document = "subscription %s($roomId: ID) { roomEvents(roomId: $roomId) { __typename seq %s } }"
    # Each viewer subscribes twice: with the namesake, and with the same selection
    # without it, which stays shared.
    per_viewer = document % ("Namesake", selection % path[-1])
    plain = document % ("Plain", selection % "")
    viewers = (alice, bob, carol)
    sockets = [await connect(user, "graphql-transport-ws") for user in viewers for _ in range(2)]
    ops = [
        await client.subscribe(query, {"roomId": rid(room)})
        for client, query in zip(sockets, [per_viewer, plain] * len(viewers), strict=True)
    ]
    await until_listening(f"room.{room.pk}", len(sockets))
    stored_executions.clear()

    await api(SEND_MESSAGE, {"roomId": rid(room), "text": "who is asking?"}, alice)

    received = [(await events_of(client, op, 1))[0] for client, op in zip(sockets, ops, strict=True)]
    own, shared = received[0::2], received[1::2]
    described = "alice" if namesake == "User.name" else "lobby"
    assert [pop_path(event, path) for event in own] == [f"{described} as seen by {v.username}" for v in viewers]
    assert own == shared and shared[0] == shared[1] == shared[2]  # and the rest is everyone's
    assert shared[0]["message"]["text"] == "who is asking?"
    # Every frame went through the live fast path; the namesake made its document's
    # rendering per viewer, and left the plain one shared.
    assert fast_deliveries and all(fast_deliveries)
    assert stored_executions.count(("Namesake", "MessageAdded")) == len(viewers)
    assert stored_executions.count(("Plain", "MessageAdded")) == 1
    for client in sockets:
        await client.close()


def test_every_listed_field_exists_on_its_type():
    for qualified in VIEWER_INDEPENDENT:
        type_name, field_name = qualified.split(".")
        graphql_type = schema._schema.get_type(type_name)
        assert graphql_type is not None and field_name in graphql_type.fields, qualified
