"""Request ids: every response says which request it was (``X-Request-ID``), every
log line of the request and every GraphQL error carry the same id, and a
WebSocket connection has one of its own."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.test import Client

from tests.clients import WSClient, async_token_for
from tests.test_security import log_lines  # noqa: F401 - fixture

HEX_ID = re.compile(r"[0-9a-f]{32}")
BROKEN = "query Broken { nope }"


def post(query: str, **headers):
    return Client().post("/graphql/", json.dumps({"query": query}), content_type="application/json", headers=headers)


class TestHTTP:
    def test_every_response_has_an_id(self, db):
        first, second = Client().get("/livez"), Client().get("/livez")
        assert HEX_ID.fullmatch(first["X-Request-ID"]) and HEX_ID.fullmatch(second["X-Request-ID"])
        assert first["X-Request-ID"] != second["X-Request-ID"]

    @pytest.mark.parametrize("sent", ["abc-123", "0f3e9c0a-6d0b-4b7e-9a64-2d3f1c1b2a00", "edge.lb:4711/x=1"])
    def test_a_sane_incoming_id_is_kept(self, db, sent):
        assert Client().get("/livez", headers={"X-Request-ID": sent})["X-Request-ID"] == sent

    @pytest.mark.parametrize("sent", ["a" * 129, "two words", "<script>", "id\u00e9", ""])
    def test_anything_else_is_replaced(self, db, sent):
        received = Client().get("/livez", headers={"X-Request-ID": sent})["X-Request-ID"]
        assert HEX_ID.fullmatch(received), received

    def test_graphql_errors_carry_the_id(self, db):
        response = post(BROKEN, **{"X-Request-ID": "trace-42"})
        error = response.json()["errors"][0]
        assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED", "requestId": "trace-42"}
        assert response["X-Request-ID"] == "trace-42"

    def test_every_log_line_of_the_request_carries_it(self, db, monkeypatch, log_lines):  # noqa: F811
        from chat import views

        def logged_check():  # runs in a worker thread (sync_to_async)
            logging.getLogger("chat.views").warning("checking the database")

        monkeypatch.setattr(views, "_check_database", logged_check)
        Client().get("/readyz", headers={"X-Request-ID": "probe-7"})
        post(BROKEN, **{"X-Request-ID": "query-8"})
        lines = log_lines.getvalue().splitlines()
        check = next(line for line in lines if "checking the database" in line)
        assert "[probe-7]" in check  # the plain format: "... chat.views [probe-7] checking the database"
        requests = [json.loads(line) for line in lines if '"logger": "chat.request"' in line]
        assert [(r["path"], r["request_id"]) for r in requests] == [("/readyz", "probe-7"), ("/graphql/", "query-8")]


@pytest.mark.django_db(transaction=True)
class TestWebSocket:
    async def test_errors_carry_the_connections_id(self, alice):
        token = await async_token_for(alice)
        async with WSClient(token=token, headers=[(b"x-request-id", b"socket-1")]) as client:
            await client.connect()
            op_id = await client.subscribe(BROKEN)
            message = await client.receive()
        assert message["type"] == "error" and message["id"] == op_id
        assert [e["extensions"] for e in message["payload"]] == [
            {"code": "GRAPHQL_VALIDATION_FAILED", "requestId": "socket-1"}
        ]

    async def test_a_connection_without_an_id_gets_one_of_its_own(self, alice, log_lines):  # noqa: F811
        token = await async_token_for(alice)
        ids = []
        for _ in range(2):
            async with WSClient(token=token) as client:
                await client.connect()
                await client.subscribe(BROKEN)
                message = await client.receive()
                ids.append(message["payload"][0]["extensions"]["requestId"])
                await client.execute("query Hello { __typename }")
        assert all(HEX_ID.fullmatch(i) for i in ids) and ids[0] != ids[1]
        operations = [json.loads(line) for line in log_lines.getvalue().splitlines() if '"chat.operation"' in line]
        assert {(o["name"], o["request_id"]) for o in operations} >= {("Hello", ids[0]), ("Hello", ids[1])}
