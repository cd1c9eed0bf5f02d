"""Persisted queries: Apollo's automatic persisted queries (hash, PERSISTED_QUERY_NOT_FOUND,
registration, GET for CDNs) and trusted-documents mode (only the manifest's documents run,
over HTTP and WebSocket)."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.test import Client

from chat.models import Room
from scripts.client_operations import web_chat_documents
from scripts.trusted_documents import first_party_manifest
from tests.clients import token_for

pytestmark = pytest.mark.django_db

ME = "query Me { me { id username } }"
CREATE_ROOM = 'mutation Make { createRoom(input: {name: "persisted"}) { id } }'


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(digest: str) -> dict:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def post(body: dict, user=None, **headers):
    if user is not None:
        headers["Authorization"] = f"JWT {token_for(user)}"
    return Client().post("/graphql/", json.dumps(body), content_type="application/json", headers=headers)


def get(params: dict, user=None, **headers):
    if user is not None:
        headers["Authorization"] = f"JWT {token_for(user)}"
    query = {key: json.dumps(value) if isinstance(value, dict) else value for key, value in params.items()}
    return Client().get(f"/graphql/?{urlencode(query)}", headers={"Accept": "application/json", **headers})


def codes(response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


class TestAutomaticPersistedQueries:
    def test_unknown_hash_is_not_found(self, alice):
        response = post({"extensions": persisted(sha(ME))}, user=alice)

        assert response.status_code == 200
        extensions = {"code": "PERSISTED_QUERY_NOT_FOUND", "requestId": response["X-Request-ID"]}
        assert response.json() == {"errors": [{"message": "PersistedQueryNotFound", "extensions": extensions}]}

    def test_register_then_run_by_hash_over_post_and_get(self, alice):
        registered = post({"query": ME, "extensions": persisted(sha(ME))}, user=alice)
        assert registered.json() == {"data": {"me": {"id": registered.json()["data"]["me"]["id"], "username": "alice"}}}

        by_post = post({"extensions": persisted(sha(ME))}, user=alice)
        by_get = get({"extensions": persisted(sha(ME)), "operationName": "Me"}, user=alice)

        assert by_post.json() == registered.json()
        assert by_get.status_code == 200 and by_get.json() == registered.json()

    def test_hash_must_match_the_document(self, alice):
        response = post({"query": ME, "extensions": persisted(sha("query Other { me { id } }"))}, user=alice)

        assert response.status_code == 400
        assert codes(response) == ["BAD_REQUEST"]
        assert codes(post({"extensions": persisted(sha("query Other { me { id } }"))})) == ["PERSISTED_QUERY_NOT_FOUND"]

    def test_an_invalid_document_is_not_stored(self, alice):
        invalid = "query Bad { nope }"
        assert codes(post({"query": invalid, "extensions": persisted(sha(invalid))}, user=alice)) == [
            "GRAPHQL_VALIDATION_FAILED"
        ]
        assert codes(post({"extensions": persisted(sha(invalid))}, user=alice)) == ["PERSISTED_QUERY_NOT_FOUND"]

    @pytest.mark.parametrize(
        "extension", [{"version": 2, "sha256Hash": "0" * 64}, {"version": 1, "sha256Hash": "xyz"}, "no"]
    )
    def test_malformed_extension_is_a_bad_request(self, alice, extension):
        response = post({"query": ME, "extensions": {"persistedQuery": extension}}, user=alice)
        assert response.status_code == 400
        assert codes(response) == ["BAD_REQUEST"]

    def test_no_mutation_over_get(self, alice):
        assert (
            "data"
            in post(
                {
                    "query": CREATE_ROOM.replace("persisted", "first"),
                    "extensions": persisted(sha(CREATE_ROOM.replace("persisted", "first"))),
                },
                user=alice,
            ).json()
        )
        before = Room.objects.count()
        cache.set("apq:" + sha(CREATE_ROOM), CREATE_ROOM)

        response = get({"extensions": persisted(sha(CREATE_ROOM))}, user=alice)

        assert response.status_code in (400, 405)
        assert Room.objects.count() == before

    def test_switched_off_answers_not_supported(self, alice, settings):
        settings.GRAPHQL_PERSISTED_QUERIES = False
        response = post({"query": ME, "extensions": persisted(sha(ME))}, user=alice)
        assert codes(response) == ["PERSISTED_QUERY_NOT_SUPPORTED"]
        assert response.json()["errors"][0]["message"] == "PersistedQueryNotSupported"

    def test_get_cache_headers(self, alice, settings):
        settings.GRAPHQL_GET_MAX_AGE = 60
        query = "query Typename { __typename }"
        post({"query": query, "extensions": persisted(sha(query))})

        anonymous = get({"extensions": persisted(sha(query))})
        signed_in = get({"extensions": persisted(sha(query))}, user=alice)
        unknown = get({"extensions": persisted(sha("query X { __typename }"))})

        assert anonymous.json() == {"data": {"__typename": "Query"}}
        assert anonymous["Cache-Control"] == "public, max-age=60"
        assert {"Accept", "Authorization"} <= {name.strip() for name in anonymous["Vary"].split(",")}
        assert signed_in["Cache-Control"] == "private, no-store"
        assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"] and unknown["Cache-Control"] == "private, no-store"

    def test_get_answers_are_private_by_default(self):
        response = get({"query": "query T { __typename }"})
        assert response["Cache-Control"] == "private, no-store"


@pytest.fixture
def trusted(tmp_path, settings):
    path = tmp_path / "trusted-documents.json"
    path.write_text(json.dumps(first_party_manifest()))
    settings.GRAPHQL_TRUSTED_DOCUMENTS = str(path)
    return path


def web_chat(name: str) -> str:
    return next(doc for doc in web_chat_documents() if doc.lstrip().split("(")[0].split("{")[0].split()[-1] == name)


class TestTrustedDocuments:
    def test_the_manifest_lists_the_web_chats_and_e2e_operations(self):
        ids = {op["id"] for op in first_party_manifest()["operations"]}
        assert {sha(doc) for doc in web_chat_documents()} <= ids
        assert all(op["id"] == sha(op["body"]) for op in first_party_manifest()["operations"])

    def test_a_listed_document_runs_by_text_and_by_hash(self, trusted, alice):
        rooms = web_chat("Rooms")
        by_text = post({"query": rooms}, user=alice)
        by_hash = post({"extensions": persisted(sha(rooms))}, user=alice)
        by_get = get({"extensions": persisted(sha(rooms))}, user=alice)

        assert "errors" not in by_text.json()
        assert by_hash.json() == by_text.json() == by_get.json()

    def test_any_other_document_is_refused_and_nothing_runs(self, trusted, alice):
        response = post({"query": CREATE_ROOM}, user=alice)

        assert codes(response) == ["QUERY_NOT_IN_SAFELIST"]
        assert not Room.objects.filter(name="persisted").exists()

    def test_unlisted_hash_is_refused_and_not_registered(self, trusted, alice):
        refused = post({"query": CREATE_ROOM, "extensions": persisted(sha(CREATE_ROOM))}, user=alice)
        again = post({"extensions": persisted(sha(CREATE_ROOM))}, user=alice)

        assert codes(refused) == codes(again) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        assert not Room.objects.filter(name="persisted").exists()
        assert cache.get("apq:" + sha(CREATE_ROOM)) is None

    def test_manifest_with_a_wrong_hash_is_refused(self, tmp_path, settings):
        from django.core.exceptions import ImproperlyConfigured

        from schema.persisted import trusted_documents

        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"0" * 64: ME}))
        settings.GRAPHQL_TRUSTED_DOCUMENTS = str(path)
        with pytest.raises(ImproperlyConfigured):
            trusted_documents()


@pytest.mark.django_db(transaction=True)
class TestTrustedDocumentsOverWebSocket:
    async def test_listed_subscription_runs_other_operations_are_refused(self, trusted, ws, alice):
        async with await ws(alice) as client:
            await client.connect()
            await client.subscribe(web_chat("Events"), {})
            assert await client.nothing()  # subscribed, no error
            op_id = await client.subscribe("subscription Mine { roomEvents { cursor } }")
            message = await client.receive()
        assert message["type"] == "error" and message["id"] == op_id
        assert [e["extensions"]["code"] for e in message["payload"]] == ["QUERY_NOT_IN_SAFELIST"]
