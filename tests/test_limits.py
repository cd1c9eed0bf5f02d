"""GraphQL abuse limits (OWASP GraphQL cheat sheet): depth, tokens, aliases,
batching, introspection and GraphiQL; every refusal typed, nothing executed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.test import Client

from chat.models import User

ME = "query Me { me { id } }"


def nested_reply_to(depth: int) -> str:
    """``node`` then ``replyTo`` nested so that the operation is ``depth`` fields deep."""
    inner = "id"
    for _ in range(depth - 1):
        inner = f"replyTo {{ {inner} }}"
    return f'query Deep {{ node(id: "TWVzc2FnZVR5cGU6MQ==") {{ ... on Message {{ {inner} }} }} }}'


def aliases(count: int) -> str:
    return "query Many { " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def post(body, content_type="application/json", **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return Client().post("/graphql/", data, content_type=content_type, headers=headers)


class TestDepth:
    def test_default_is_ten(self, settings):
        assert settings.GRAPHQL_MAX_DEPTH == 10

    def test_at_the_limit_runs(self, gql, settings):
        settings.GRAPHQL_MAX_DEPTH = 5
        body = gql(nested_reply_to(5))
        assert "QUERY_TOO_COMPLEX" not in codes(body)
        assert "data" in body

    def test_past_the_limit_is_refused_before_execution(self, gql, settings):
        settings.GRAPHQL_MAX_DEPTH = 5
        body = gql(nested_reply_to(6))
        assert codes(body) == ["QUERY_TOO_COMPLEX"]
        assert body["errors"][0]["message"] == "'Deep' exceeds maximum operation depth of 5"
        assert body.get("data") is None

    def test_fragments_count_too(self, gql, settings):
        settings.GRAPHQL_MAX_DEPTH = 3
        query = (
            'query F { node(id: "x") { ...A } } fragment A on Message { replyTo { ...B } }'
            " fragment B on Message { replyTo { replyTo { id } } }"
        )
        assert codes(gql(query)) == ["QUERY_TOO_COMPLEX"]


class TestTokens:
    def test_default(self, settings):
        assert settings.GRAPHQL_MAX_TOKENS == 2000

    def test_a_document_past_the_limit_is_not_even_parsed(self, gql, settings):
        settings.GRAPHQL_MAX_TOKENS = 50
        body = gql("query T { me { " + "id " * 60 + "} }")
        assert codes(body) == ["QUERY_TOO_COMPLEX"]
        assert "more than 50 tokens" in body["errors"][0]["message"]

    def test_under_the_limit_runs(self, gql, settings):
        settings.GRAPHQL_MAX_TOKENS = 50
        assert gql(ME) == {"data": {"me": None}}


class TestAliases:
    def test_default(self, settings):
        assert settings.GRAPHQL_MAX_ALIASES == 15

    def test_at_the_limit_runs(self, gql):
        body = gql(aliases(15))
        assert body == {"data": {f"a{i}": "Query" for i in range(15)}}

    def test_past_the_limit_is_refused(self, gql):
        body = gql(aliases(16))
        assert codes(body) == ["QUERY_TOO_COMPLEX"]
        assert body["errors"][0]["message"] == "16 aliases found. Allowed: 15"

    def test_aliases_hidden_in_fragments_count(self, gql, settings):
        settings.GRAPHQL_MAX_ALIASES = 2
        query = "query F { ...A ...B } fragment A on Query { a: __typename b: __typename } fragment B on Query { c: __typename }"
        assert codes(gql(query)) == ["QUERY_TOO_COMPLEX"]


class TestBatching:
    """One operation per HTTP request: a JSON list body is refused, typed, and nothing runs."""

    def test_batch_is_refused_with_400(self, db, alice):
        before = User.objects.count()
        register = 'mutation { register(input: {username: "x1", email: "x1@example.com", password: "a long password 1", displayName: "X"}) { token } }'
        response = post([{"query": register}, {"query": register}])
        assert response.status_code == 400
        body = response.json()
        assert body["errors"][0]["message"] == "Batching is not enabled"
        assert "data" not in body
        assert User.objects.count() == before

    def test_several_operations_in_one_document_run_only_the_named_one(self, gql):
        body = gql("query A { a: __typename } query B { b: __typename }")
        assert body == {"data": {"a": "Query"}}  # one operation per request, never both
        response = post({"query": "query A { a: __typename } query B { b: __typename }", "operationName": "B"})
        assert response.json() == {"data": {"b": "Query"}}


class TestTypedRequestErrors:
    def test_syntax_error(self, gql):
        assert codes(gql("query {")) == ["GRAPHQL_PARSE_FAILED"]

    def test_unknown_field(self, gql):
        assert codes(gql("query { nope }")) == ["GRAPHQL_VALIDATION_FAILED"]

    @pytest.mark.parametrize(
        "document",
        [
            "query { ...Nope }",
            "query Q { me { ...Nope } }",
            "query Q { ...Known } fragment Known on Query { me { ...Nope } }",
        ],
    )
    def test_unknown_fragment(self, gql, document):
        body = gql(document)
        assert "data" not in body or body["data"] is None
        assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
        assert body["errors"][0]["message"] == "Unknown fragment 'Nope'."

    async def test_unknown_fragment_over_websocket(self, db):
        from tests.clients import WSClient

        client = WSClient()
        await client.connect()
        op = await client.subscribe("query { ...Nope }")
        message = await client.receive()
        assert message["id"] == op and message["type"] == "error", message
        assert [(e["message"], e["extensions"]["code"]) for e in message["payload"]] == [
            ("Unknown fragment 'Nope'.", "GRAPHQL_VALIDATION_FAILED")
        ]
        await client.close()

    def test_variable_of_the_wrong_type(self, gql):
        body = gql("query Q($first: Int) { users(first: $first) { totalCount } }", {"first": "many"})
        assert codes(body) == ["BAD_USER_INPUT"]

    def test_malformed_global_id(self, gql, alice):
        body = gql('query { user(id: "not-a-global-id") { id } }', user=alice)
        assert codes(body) == ["BAD_USER_INPUT"]

    def test_node_with_a_non_numeric_pk_is_bad_input(self, gql):  # found by tests/test_fuzz.py
        body = gql("query N($id: ID!) { node(id: $id) { id } }", {"id": "Um9vbTp4"})  # "Room:x"
        assert codes(body) == ["BAD_USER_INPUT"]
        assert body["errors"][0]["message"] == "Malformed ID."

    def test_upload_given_a_string_is_bad_input(self, gql, alice):  # found by tests/test_fuzz.py
        body = gql("mutation U($file: Upload!) { uploadAttachment(file: $file) { id } }", {"file": "x"}, user=alice)
        assert codes(body) == ["BAD_USER_INPUT"]
        assert "Upload must be a file sent as a multipart request." in body["errors"][0]["message"]

    def test_suggestions_kept_while_introspection_is_on(self, gql):
        body = gql("query { mee { id } }")
        assert "Did you mean 'me'?" in body["errors"][0]["message"]


class TestIntrospectionAndIDEInDevelopment:
    def test_introspection_on(self, gql):
        body = gql("query { __schema { queryType { name } } }")
        assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}

    def test_graphiql_served(self, db):
        response = Client().get("/graphql/", headers={"Accept": "text/html"})
        assert response.status_code == 200 and b"graphiql" in response.content.lower()


PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "ALLOWED_HOSTS": "testserver",
    "SECURE_SSL_REDIRECT": "false",
    "DJANGO_SECRET_KEY": "p" * 30 + "-Zq8!x7@w#e$r%t^y&u*i(o)p_a+s=d" + "q" * 20,
}
PROBE = """
import django, json, os
os.environ['DJANGO_SETTINGS_MODULE'] = 'backend.settings'
django.setup()
from django.conf import settings as django_settings
from django.test import Client
c = Client()
r = c.post('/graphql/', json.dumps({'query': '{ __schema { queryType { name } } }'}), content_type='application/json')
s = c.post('/graphql/', json.dumps({'query': '{ mee { id } }'}), content_type='application/json')
g = c.get('/graphql/', headers={'Accept': 'text/html'})
print(json.dumps({'introspection': r.json(), 'suggestion': s.json(), 'ide_status': g.status_code,
                  'ide': b'graphiql' in g.content.lower()}))
"""


def run_probe(env: dict) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GRAPH")) and k != "DATABASE_URL"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


class TestProduction:
    def test_introspection_ide_and_suggestions_off(self):
        result = run_probe(PRODUCTION)
        errors = result["introspection"]["errors"]
        assert {e["extensions"]["code"] for e in errors} == {"GRAPHQL_VALIDATION_FAILED"}
        assert "introspection has been disabled" in errors[0]["message"]
        assert result["introspection"].get("data") is None
        assert result["suggestion"]["errors"][0]["message"] == "Cannot query field 'mee' on type 'Query'."
        assert result["ide"] is False and result["ide_status"] != 200

    def test_enabled_by_setting(self):
        result = run_probe({**PRODUCTION, "GRAPHQL_INTROSPECTION": "true", "GRAPHIQL_ENABLED": "true"})
        assert result["introspection"] == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
        assert result["ide"] is True and result["ide_status"] == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ('{"query": 5}', "application/json"),
        ('{"query": "{ me { id } }", "variables": "nope"}', "application/json"),
        ("query=%7Bme%7Bid%7D%7D", "text/plain"),
        ("", "application/json"),
        # found by tests/test_fuzz.py (each was a 500):
        ("null", "application/json"),
        ("[1]", "application/json"),
        (b"\x80", "application/json"),
        ('{"query": "{ __typename }", "operationName": 5}', "application/json"),
    ],
)
def test_malformed_requests_are_4xx_json(db, body, content_type):
    response = post(body, content_type=content_type)
    assert 400 <= response.status_code < 500, response.content
    payload = response.json()
    assert payload["errors"] and "Traceback" not in response.content.decode()


class TestSearchLength:
    """Every ``search`` argument is capped: a long one is BAD_USER_INPUT, never a database error."""

    @pytest.fixture
    def member(self, db):
        from chat.services import rooms

        user = User.objects.create(username="searcher", password="!")
        room = rooms.create_room(user, "lobby")
        return user, room

    @pytest.mark.parametrize(
        "query",
        [
            "query S($s: String) { users(search: $s) { totalCount } }",
            "query S($s: String) { rooms(search: $s) { totalCount } }",
            "query S($s: String, $r: ID!) { messages(roomId: $r, search: $s) { totalCount } }",
        ],
    )
    def test_past_the_cap_is_bad_user_input_and_at_it_runs(self, gql, member, query):
        from tests.chat_world import gid

        SEARCH_MAX_LENGTH = django_settings.SEARCH_QUERY_MAX_LENGTH

        user, room = member
        variables = {"r": gid("Room", room.pk)}
        refused = gql(query, {**variables, "s": "x" * 60_000}, user=user)
        assert codes(refused) == ["BAD_USER_INPUT"]
        assert refused["errors"][0]["extensions"]["fields"] == {"search": [f"At most {SEARCH_MAX_LENGTH} characters."]}
        assert codes(gql(query, {**variables, "s": "x" * (SEARCH_MAX_LENGTH + 1)}, user=user)) == ["BAD_USER_INPUT"]
        allowed = gql(query, {**variables, "s": " " + "x" * SEARCH_MAX_LENGTH + " "}, user=user)
        assert "errors" not in allowed, allowed


@pytest.mark.services
class TestNulCharactersOnPostgres:
    """Postgres cannot store U+0000: psycopg2 refuses before writing (found by tests/test_fuzz.py)."""

    def test_graphql_text_with_nul_is_bad_input_and_writes_nothing(self, gql, alice):
        from chat.models import Room

        body = gql("mutation C($n: String!) { createRoom(input: {name: $n}) { id } }", {"n": "a\x00b"}, user=alice)
        assert codes(body) == ["BAD_USER_INPUT"]
        assert body["errors"][0]["message"] == "Text must not contain NUL (U+0000) characters."
        assert Room.objects.count() == 0

    def test_rest_text_with_nul_is_400_and_writes_nothing(self, db, alice):
        from chat.models import Message
        from chat.services import rooms
        from schema.global_ids import encode_id
        from tests.clients import token_for

        room = rooms.create_room(alice, "nul")
        response = Client().post(
            f"/api/rooms/{encode_id('Room', room.pk)}/messages/",
            {"text": "a\x00b"},
            headers={"Authorization": f"Bearer {token_for(alice)}"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BAD_USER_INPUT"
        assert Message.objects.count() == 0
