"""Query cost limits: the cost is estimated from list sizes before execution; over
the budget (GRAPHQL_MAX_COST) an operation is refused with QUERY_TOO_COMPLEX and
its cost, and nothing runs. Our own clients' operations stay well inside it."""

from __future__ import annotations

import pytest
from graphql import parse

from schema import schema
from schema.cost import operation_cost
from scripts.client_operations import docs_documents, web_chat_documents
from tests.clients import without_request_id

pytestmark = pytest.mark.django_db

ROOMS_AND_MEMBERS = "rooms(first: 100) { edges { node { id members(first: 100) { role user { id username } } } } }"
FIFTEEN_ALIASES = "query Greedy { " + " ".join(f"r{i}: {ROOMS_AND_MEMBERS}" for i in range(15)) + " }"


def cost(query: str, variables: dict | None = None, operation_name: str | None = None) -> int:
    return operation_cost(schema._schema, parse(query), operation_name, variables)


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


class TestEstimate:
    def test_connections_count_their_page(self):
        # rooms (1) + 10 edges + 10 rooms + 10 x 5 memberships + 10 x 5 users
        assert cost("{ rooms(first: 10) { edges { node { members(first: 5) { user { id } } } } } }") == 121

    def test_page_defaults_and_maxima(self, settings):
        assert settings.PAGE_SIZE_DEFAULT == 20 and settings.PAGE_SIZE_MAX == 100
        assert cost("{ rooms { edges { node { id } } } }") == 1 + 20 + 20
        assert cost("{ rooms(first: 5000) { edges { node { id } } } }") == 1 + 100 + 100
        assert cost("{ rooms(first: -3) { edges { node { id } } } }") == 1

    def test_last_counts_like_first(self):
        query = "query H($r: ID!) { messages(roomId: $r, last: 7) { edges { node { id sender { id } } } } }"
        assert cost(query, {"r": "x"}) == 1 + 7 + 7 + 7

    def test_sizes_from_variables(self):
        query = "query R($n: Int) { rooms(first: $n) { edges { node { id } } } }"
        assert cost(query, {"n": 50}) == 101
        assert cost(query, {}) == 41  # the default page
        assert cost(query, {"n": "50"}) == 41  # not an Int: variable coercion refuses it anyway

    def test_bounded_lists_use_their_bound(self, settings):
        settings.MAX_FILES_PER_MESSAGE = 10
        query = "query H($r: ID!) { messages(roomId: $r, first: 2) { edges { node { attachments { id } } } } }"
        assert cost(query, {"r": "x"}) == 1 + 2 + 2 + 2 * 10

    def test_fragments_and_type_conditions_are_counted(self):
        query = """
            subscription S { roomEvents { room { id } ...M } }
            fragment M on MessageAdded { message { sender { id } attachments { id } } }
        """
        # roomEvents 1, room 1, message 1, sender 1, attachments 10
        assert cost(query) == 14

    def test_scalars_and_typename_are_free(self):
        assert cost("{ me { id username __typename } }") == 1
        assert cost("{ __typename }") == 0

    def test_the_named_operation_is_costed(self):
        query = f"query Cheap {{ me {{ id }} }} query Dear {{ {ROOMS_AND_MEMBERS} }}"
        assert cost(query, operation_name="Cheap") == 1
        assert cost(query, operation_name="Dear") == 1 + 100 + 100 + 100 * 100 + 100 * 100


class TestRefusal:
    def test_fifteen_aliases_of_100_rooms_of_100_members_are_refused(
        self, gql, alice, settings, django_assert_num_queries
    ):
        expected = 15 * (1 + 100 + 100 + 100 * 100 + 100 * 100)
        with django_assert_num_queries(0):  # refused before execution: not even the rooms are read
            body = gql(FIFTEEN_ALIASES)

        assert "data" not in body or body["data"] is None
        assert codes(body) == ["QUERY_TOO_COMPLEX"]
        error = body["errors"][0]
        assert without_request_id(error["extensions"]) == {
            "code": "QUERY_TOO_COMPLEX",
            "cost": expected,
            "maxCost": settings.GRAPHQL_MAX_COST,
        }
        assert str(expected) in error["message"]

    def test_refused_for_a_signed_in_user_too(self, gql, alice):
        body = gql(FIFTEEN_ALIASES, user=alice)
        assert codes(body) == ["QUERY_TOO_COMPLEX"]

    def test_cost_from_variables_decides(self, gql, alice, settings):
        settings.GRAPHQL_MAX_COST = 150
        query = "query R($n: Int) { rooms(first: $n) { edges { node { id } } } }"
        assert gql(query, {"n": 50}, user=alice)["data"]["rooms"]["edges"] == []
        body = gql(query, {"n": 100}, user=alice)
        assert codes(body) == ["QUERY_TOO_COMPLEX"]
        assert body["errors"][0]["extensions"]["cost"] == 201

    def test_budget_setting(self, gql, alice, settings):
        settings.GRAPHQL_MAX_COST = 1
        assert gql("{ me { id } }", user=alice)["data"]["me"]["id"]
        body = gql("{ me { id } rooms(first: 1) { edges { node { id } } } }", user=alice)
        assert without_request_id(body["errors"][0]["extensions"]) == {
            "code": "QUERY_TOO_COMPLEX",
            "cost": 4,
            "maxCost": 1,
        }

    def test_zero_switches_the_limit_off(self, gql, alice, settings):
        settings.GRAPHQL_MAX_COST = 0
        assert "errors" not in gql(FIFTEEN_ALIASES, user=alice)

    def test_mutation_refused_changes_nothing(self, gql, alice, settings):
        from chat.models import Room

        settings.GRAPHQL_MAX_COST = 2
        query = 'mutation { createRoom(input: {name: "dear"}) { id members(first: 100) { user { id } } } }'
        body = gql(query, user=alice)
        assert codes(body) == ["QUERY_TOO_COMPLEX"]
        assert not Room.objects.filter(name="dear").exists()


@pytest.mark.django_db(transaction=True)
class TestRefusalOverWebSocket:
    async def test_graphql_transport_ws(self, ws, alice):
        async with await ws(alice) as client:
            await client.connect()
            op_id = await client.subscribe(FIFTEEN_ALIASES)
            message = await client.receive()
        assert message["type"] == "error" and message["id"] == op_id
        assert [e["extensions"]["code"] for e in message["payload"]] == ["QUERY_TOO_COMPLEX"]

    @pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
    async def test_a_subscription_over_budget(self, ws, alice, settings, protocol):
        settings.GRAPHQL_MAX_COST = 100
        query = "subscription S { roomEvents { room { members(first: 100) { user { id } } } } }"
        async with await ws(alice, protocol=protocol) as client:
            await client.connect()
            op_id = await client.subscribe(query)
            message = await client.receive()
        assert message["type"] == "error" and message["id"] == op_id
        errors = message["payload"] if isinstance(message["payload"], list) else [message["payload"]]
        assert [without_request_id(e["extensions"]) for e in errors] == [
            {"code": "QUERY_TOO_COMPLEX", "cost": 202, "maxCost": 100}
        ]


class TestOurClientsStayInside:
    """The web chat's and the docs' operations cost at most a third of the budget
    (with the largest page the web chat asks for, 30 messages)."""

    def test_web_chat(self, settings):
        documents = web_chat_documents()
        assert len(documents) >= 15  # the extraction found the chat's operations
        for document in documents:
            assert cost(document, {"first": 30}) <= settings.GRAPHQL_MAX_COST / 3, document

    def test_readme_and_docs(self, settings):
        documents = docs_documents()
        assert len(documents) >= 20
        for document in documents:
            assert cost(document, {"first": 100}) <= settings.GRAPHQL_MAX_COST / 3, document
