"""GraphQL over HTTP: media types and status codes, as the spec and its
`graphql-http` audit (run in tests/e2e) require."""

from __future__ import annotations

import json

import pytest

from schema.views import negotiate_media_type
from tests.clients import token_for

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

ME = "query Me { me { id } }"
PARSE_ERROR = "query Me { me { id }"
VALIDATION_ERROR = "query Nope { nope }"
NODE = "query Node($id: ID!) { node(id: $id) { id } }"


def post(client, body, accept: str | None, content_type: str = JSON):
    headers = {"Accept": accept} if accept is not None else {}
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/graphql/", data, content_type=content_type, headers=headers)


def media_type(response) -> str:
    return response["Content-Type"].split(";")[0].strip()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        # What Apollo Client 4 and graphql-http's client send.
        (f"{GRAPHQL_RESPONSE},{JSON};q=0.9", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0", JSON),
        ("text/plain", JSON),
    ],
)
def test_accept_header_picks_the_media_type(accept, expected):
    assert negotiate_media_type(accept) == expected


@pytest.mark.django_db
class TestGraphQLResponseJson:
    def test_a_successful_operation_is_200_in_the_asked_media_type(self, client):
        response = post(client, {"query": ME}, GRAPHQL_RESPONSE)
        assert response.status_code == 200
        assert media_type(response) == GRAPHQL_RESPONSE
        assert response.json() == {"data": {"me": None}}

    @pytest.mark.parametrize(
        ("body", "message_part"),
        [
            ({"query": PARSE_ERROR}, "Syntax Error"),
            ({"query": VALIDATION_ERROR}, "Cannot query field 'nope'"),
            ({"query": NODE, "variables": {}}, "Expected a value of non-null type 'ID!' to be provided."),
            ({"query": NODE, "variables": {"id": {"not": "an id"}}}, "ID cannot represent value"),
        ],
        ids=["parse", "validation", "missing variable", "variable coercion"],
    )
    def test_request_errors_are_400_without_data(self, client, body, message_part):
        response = post(client, body, GRAPHQL_RESPONSE)
        assert response.status_code == 400
        assert media_type(response) == GRAPHQL_RESPONSE
        result = response.json()
        assert "data" not in result
        assert len(result["errors"]) == 1
        assert message_part in result["errors"][0]["message"]

    def test_a_field_error_during_execution_is_200_with_data(self, client):
        response = client.post(
            "/graphql/",
            json.dumps({"query": ME}),
            content_type=JSON,
            headers={"Accept": GRAPHQL_RESPONSE, "Authorization": "JWT not-a-token"},
        )
        assert response.status_code == 200
        assert media_type(response) == GRAPHQL_RESPONSE
        result = response.json()
        assert result["data"] == {"me": None}
        assert result["errors"][0]["path"] == ["me"]
        assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    def test_a_body_that_is_not_json_is_400_with_a_graphql_error(self, client):
        response = post(client, "{not json", GRAPHQL_RESPONSE)
        assert response.status_code == 400
        assert media_type(response) == GRAPHQL_RESPONSE
        request_id = response["X-Request-ID"]
        assert response.json() == {
            "errors": [
                {
                    "message": "Unable to parse request body as JSON",
                    "extensions": {"code": "BAD_REQUEST", "requestId": request_id},
                }
            ]
        }

    def test_a_missing_query_is_400(self, client):
        response = post(client, {"variables": {}}, GRAPHQL_RESPONSE)
        assert response.status_code == 400
        request_id = response["X-Request-ID"]
        assert response.json() == {
            "errors": [
                {
                    "message": "No GraphQL query found in the request",
                    "extensions": {"code": "BAD_REQUEST", "requestId": request_id},
                }
            ]
        }

    def test_a_mutation_over_get_is_refused(self, client):
        response = client.get("/graphql/", {"query": "mutation M { __typename }"}, headers={"Accept": GRAPHQL_RESPONSE})
        assert response.status_code in (400, 405)
        assert media_type(response) == GRAPHQL_RESPONSE
        assert "data" not in response.json()

    def test_other_methods_are_405_with_allow(self, client):
        response = client.put("/graphql/", "{}", content_type=JSON, headers={"Accept": GRAPHQL_RESPONSE})
        assert response.status_code == 405
        assert response["Allow"] == "GET, POST"
        assert media_type(response) == GRAPHQL_RESPONSE


@pytest.mark.django_db
class TestLegacyApplicationJson:
    """Clients that ask for application/json (or nothing) keep the 200 answers."""

    @pytest.mark.parametrize("accept", [JSON, None, "*/*"])
    @pytest.mark.parametrize(
        "body",
        [{"query": PARSE_ERROR}, {"query": VALIDATION_ERROR}, {"query": NODE, "variables": {}}],
        ids=["parse", "validation", "variables"],
    )
    def test_request_errors_are_200_json(self, client, accept, body):
        response = post(client, body, accept)
        assert response.status_code == 200
        assert media_type(response) == JSON
        result = response.json()
        assert result["data"] is None
        assert len(result["errors"]) == 1

    def test_a_successful_operation_is_200_json(self, client):
        response = post(client, {"query": ME}, JSON)
        assert response.status_code == 200
        assert media_type(response) == JSON
        assert response.json() == {"data": {"me": None}}

    def test_a_body_that_is_not_json_is_still_400(self, client):
        response = post(client, "{not json", JSON)
        assert response.status_code == 400
        assert media_type(response) == JSON
        assert response.json()["errors"][0]["message"] == "Unable to parse request body as JSON"

    def test_the_jwt_still_authenticates(self, client, alice):
        from tests.clients import token_for

        response = client.post(
            "/graphql/",
            json.dumps({"query": "query Me { me { username } }"}),
            content_type=JSON,
            headers={"Accept": GRAPHQL_RESPONSE, "Authorization": f"JWT {token_for(alice)}"},
        )
        assert response.status_code == 200
        assert response.json() == {"data": {"me": {"username": "alice"}}}


@pytest.mark.django_db
class TestSubscriptionsOverPlainHttp:
    """A subscription POSTed (or GET) as a plain request is a clean request error,
    never an execution that fails with INTERNAL_SERVER_ERROR."""

    SUBSCRIPTION = "subscription Notes { notifications { kind } }"

    @pytest.mark.parametrize("accept", [None, JSON, GRAPHQL_RESPONSE])
    @pytest.mark.parametrize("signed_in", [False, True])
    def test_json_post_is_400_bad_request(self, client, alice, accept, signed_in, caplog):
        headers = {"Accept": accept} if accept else {}
        if signed_in:
            headers["Authorization"] = f"JWT {token_for(alice)}"
        response = client.post(
            "/graphql/", json.dumps({"query": self.SUBSCRIPTION}), content_type=JSON, headers=headers
        )
        assert response.status_code == 400
        body = response.json()
        assert "data" not in body
        [error] = body["errors"]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "WebSocket" in error["message"]
        assert not [r for r in caplog.records if r.levelname == "ERROR"]

    def test_multipart_post_is_400_bad_request(self, client, alice):
        response = client.post(
            "/graphql/",
            {"operations": json.dumps({"query": self.SUBSCRIPTION, "variables": {}}), "map": "{}"},
            headers={"Authorization": f"JWT {token_for(alice)}"},
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

    def test_get_is_400_bad_request(self, client):
        response = client.get("/graphql/", {"query": self.SUBSCRIPTION}, headers={"Accept": JSON})
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

    def test_queries_and_mutations_still_run(self, client, alice):
        headers = {"Authorization": f"JWT {token_for(alice)}"}
        response = client.post("/graphql/", json.dumps({"query": ME}), content_type=JSON, headers=headers)
        assert response.status_code == 200 and response.json()["data"]["me"]["id"]


@pytest.mark.django_db
class TestDeeplyNestedJson:
    """JSON nested past the parser's recursion limit is a 400 GraphQL error in JSON."""

    DEPTH = 100_000

    @pytest.mark.parametrize("accept", [None, GRAPHQL_RESPONSE])
    def test_a_nested_body_is_400_json(self, client, accept):
        response = post(client, "[" * self.DEPTH + "]" * self.DEPTH, accept)
        assert response.status_code == 400
        assert media_type(response) in (JSON, GRAPHQL_RESPONSE)
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

    def test_nested_variables_in_a_body_are_400_json(self, client):
        body = '{"query": "query Me { me { id } }", "variables": ' + '{"a":' * self.DEPTH + "1" + "}" * self.DEPTH + "}"
        response = post(client, body, None)
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

    def test_nested_variables_in_a_query_string_are_400_json(self, client):
        variables = "[" * self.DEPTH + "]" * self.DEPTH
        response = client.get("/graphql/", {"query": ME, "variables": variables}, headers={"Accept": JSON})
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
