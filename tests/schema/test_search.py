"""searchMessages through the API, in whichever mode the suite runs (FTS5 on
SQLite, tsvector with a GIN index on Postgres): only the caller's rooms, every
word must match, snippets escaped and marked, edits and deletions in step,
paging, relevance, and refusals that change nothing."""

from __future__ import annotations

import pytest
from django.db import connection

from chat.services import messages as message_services
from chat.services import rooms as room_services
from schema.global_ids import encode_id
from tests.chat_world import db_state

SEARCH = """
query Search($query: String!, $roomId: ID, $first: Int, $after: String, $orderBy: MessageSearchOrder) {
  searchMessages(query: $query, roomId: $roomId, first: $first, after: $after, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor snippet node { id text room { name } sender { username } } }
  }
}
"""
MESSAGES = """
query History($roomId: ID!, $search: String) {
  messages(roomId: $roomId, search: $search) { edges { node { text } } }
}
"""


def rid(room) -> str:
    return encode_id("Room", room.pk)


def search(gql, user, query, **variables) -> dict:
    body = gql(SEARCH, {"query": query, **variables}, user=user)
    assert "errors" not in body, body
    return body["data"]["searchMessages"]


def texts(result: dict) -> list[str]:
    return [edge["node"]["text"] for edge in result["edges"]]


def error_code(body: dict) -> str:
    assert body["data"] is None, body
    return body["errors"][0]["extensions"]["code"]


@pytest.fixture
def rooms(alice, bob, carol):
    """Two rooms of alice's with bob in both; carol has a room of her own."""
    lobby = room_services.create_room(alice, "lobby", member_ids=[bob.pk])
    ops = room_services.create_room(alice, "ops", is_private=True, member_ids=[bob.pk])
    hers = room_services.create_room(carol, "carols", is_private=True)
    return lobby, ops, hers


class TestSearch:
    def test_finds_words_in_every_room_of_mine_newest_first(self, gql, rooms, alice, bob, carol):
        lobby, ops, hers = rooms
        message_services.send_message(alice, lobby.pk, "The Deploy is on Friday")
        message_services.send_message(bob, ops.pk, "deploy failed, rolling back")
        message_services.send_message(bob, ops.pk, "nothing to see")
        message_services.send_message(carol, hers.pk, "my deploy secret")
        result = search(gql, bob, "DEPLOY")
        assert texts(result) == ["deploy failed, rolling back", "The Deploy is on Friday"]
        assert [e["node"]["room"]["name"] for e in result["edges"]] == ["ops", "lobby"]
        assert result["totalCount"] == 2
        assert texts(search(gql, carol, "deploy")) == ["my deploy secret"]  # only her own room
        assert texts(search(gql, bob, "deploy", roomId=rid(lobby))) == ["The Deploy is on Friday"]

    def test_every_word_must_match_as_a_whole_word(self, gql, rooms, alice, bob):
        lobby, _, _ = rooms
        message_services.send_message(alice, lobby.pk, "release notes for the release")
        message_services.send_message(alice, lobby.pk, "notes only")
        message_services.send_message(alice, lobby.pk, "releases are fun")
        assert texts(search(gql, bob, "release notes")) == ["release notes for the release"]
        assert texts(search(gql, bob, "notes")) == ["notes only", "release notes for the release"]
        assert texts(search(gql, bob, "rele")) == []  # not a substring match

    def test_query_syntax_is_taken_as_words(self, gql, rooms, alice, bob):
        lobby, _, _ = rooms
        message_services.send_message(alice, lobby.pk, 'quote " and star * and NEAR or OR')
        for query in ['"quote', "star*", "NEAR(", "or OR", "quote AND -star", "text:quote"]:
            body = gql(SEARCH, {"query": query}, user=bob)
            assert "errors" not in body, (query, body)

    def test_snippets_mark_hits_and_escape_html(self, gql, rooms, alice, bob):
        lobby, _, _ = rooms
        message_services.send_message(alice, lobby.pk, '<script>alert("x")</script> the alert & more \ue000forged')
        [edge] = search(gql, bob, "alert")["edges"]
        snippet = edge["snippet"]
        # Postgres' ts_headline drops markup-like tokens, SQLite's snippet() keeps them: escaped either way.
        assert "<script>" not in snippet and "</script>" not in snippet
        assert "&amp;" in snippet and "&quot;" in snippet
        assert "the <mark>alert</mark> &amp; more forged" in snippet
        marks = snippet.count("<mark>")
        assert marks >= 1 and snippet.count("</mark>") == marks  # the private-use character forges nothing
        assert snippet.replace("<mark>", "").replace("</mark>", "").count("<") == 0
        assert "\ue000" not in snippet

    def test_relevance_orders_best_matches_first(self, gql, rooms, alice, bob):
        lobby, _, _ = rooms
        message_services.send_message(alice, lobby.pk, "cats and dogs")
        message_services.send_message(
            alice, lobby.pk, "cats cats cats everywhere cats, more cats than anything else in cats land"
        )
        message_services.send_message(alice, lobby.pk, "a cats story among many many many other words today")
        newest = texts(search(gql, bob, "cats", orderBy="NEWEST"))
        assert newest[0].startswith("a cats story")
        best = texts(search(gql, bob, "cats", orderBy="RELEVANCE"))
        assert best[0].startswith("cats cats cats")
        assert sorted(best) == sorted(newest)

    def test_pages_with_first_and_after(self, gql, rooms, alice, bob):
        lobby, _, _ = rooms
        for n in range(5):
            message_services.send_message(alice, lobby.pk, f"page word {n}")
        first = search(gql, bob, "word", first=2)
        assert texts(first) == ["page word 4", "page word 3"]
        assert first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
        second = search(gql, bob, "word", first=2, after=first["pageInfo"]["endCursor"])
        assert texts(second) == ["page word 2", "page word 1"]
        third = search(gql, bob, "word", first=2, after=second["pageInfo"]["endCursor"])
        assert texts(third) == ["page word 0"] and not third["pageInfo"]["hasNextPage"]
        assert third["totalCount"] == 5

    def test_edits_and_deletes_are_in_step(self, gql, rooms, alice, bob):
        lobby, _, _ = rooms
        message = message_services.send_message(alice, lobby.pk, "the launch code is swordfish")
        assert texts(search(gql, bob, "swordfish")) == ["the launch code is swordfish"]
        message_services.edit_message(alice, message.pk, "the launch code is marlin")
        assert texts(search(gql, bob, "swordfish")) == []
        assert texts(search(gql, bob, "marlin")) == ["the launch code is marlin"]
        message_services.delete_message(alice, message.pk)
        assert texts(search(gql, bob, "marlin")) == []
        assert texts(search(gql, bob, "launch")) == []
        body = gql(MESSAGES, {"roomId": rid(lobby), "search": "marlin"}, user=bob)
        assert body["data"]["messages"]["edges"] == []

    def test_a_deleted_message_leaves_nothing_in_the_index(self, db, rooms, alice):
        lobby, _, _ = rooms
        message = message_services.send_message(alice, lobby.pk, "redact this zebra")
        message_services.delete_message(alice, message.pk)
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM chat_message_search WHERE text LIKE '%zebra%'")
                assert cursor.fetchone()[0] == 0
                cursor.execute("SELECT count(*) FROM chat_message_search WHERE chat_message_search MATCH 'zebra'")
                assert cursor.fetchone()[0] == 0
        else:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM chat_message WHERE to_tsvector('simple'::regconfig, COALESCE(text, '')) "
                    "@@ plainto_tsquery('simple', 'zebra')"
                )
                assert cursor.fetchone()[0] == 0

    def test_leaving_a_room_leaves_its_messages_out(self, gql, rooms, alice, bob):
        lobby, _, _ = rooms
        message_services.send_message(alice, lobby.pk, "remember the milk")
        room_services.leave_room(bob, lobby.pk)
        assert texts(search(gql, bob, "milk")) == []
        assert texts(search(gql, alice, "milk")) == ["remember the milk"]

    def test_the_history_search_uses_the_index_too(self, gql, rooms, alice, bob):
        lobby, _, _ = rooms
        message_services.send_message(alice, lobby.pk, "catalog")
        message_services.send_message(alice, lobby.pk, "a cat")
        body = gql(MESSAGES, {"roomId": rid(lobby), "search": "cat"}, user=bob)
        assert [e["node"]["text"] for e in body["data"]["messages"]["edges"]] == ["a cat"]


class TestRefusals:
    def test_bad_input_and_rooms_not_mine_change_nothing(self, gql, rooms, alice, bob, carol, settings):
        lobby, _, hers = rooms
        message_services.send_message(alice, lobby.pk, "hello there")
        public = room_services.create_room(carol, "open")
        before = db_state()
        limit = settings.SEARCH_QUERY_MAX_LENGTH
        cases = [
            ({"query": "x" * (limit + 1)}, "BAD_USER_INPUT"),
            ({"query": "   "}, "BAD_USER_INPUT"),
            ({"query": "!!! ???"}, "BAD_USER_INPUT"),
            ({"query": "hello", "first": 101}, "BAD_USER_INPUT"),
            ({"query": "hello", "first": -1}, "BAD_USER_INPUT"),
            ({"query": "hello", "after": "not-a-cursor"}, "BAD_USER_INPUT"),
            ({"query": "hello", "roomId": "garbage"}, "BAD_USER_INPUT"),
            ({"query": "hello", "roomId": rid(hers)}, "NOT_FOUND"),  # private, not mine
            ({"query": "hello", "roomId": rid(public)}, "FORBIDDEN"),  # public, not joined
            ({"query": "hello", "roomId": encode_id("User", bob.pk)}, "NOT_FOUND"),
        ]
        for variables, code in cases:
            assert error_code(gql(SEARCH, variables, user=bob)) == code, variables
        assert error_code(gql(SEARCH, {"query": "hello"}, user=None)) == "UNAUTHENTICATED"
        assert search(gql, bob, "x" * limit)["totalCount"] == 0  # exactly at the limit is fine
        assert db_state() == before


def test_the_index_serves_the_search(db):
    """Postgres answers from the GIN index on the text's tsvector; SQLite from its FTS5 table."""
    from chat import search as message_search
    from chat.models import Message

    sql, params = message_search.matching(Message.objects.all(), ["hello"]).query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned anyway
        cursor.execute("EXPLAIN " + ("" if connection.vendor == "postgresql" else "QUERY PLAN ") + sql, params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    expected = "message_text_search_idx" if connection.vendor == "postgresql" else "chat_message_search"
    assert expected in plan, plan
