"""Full-text search over the messages of a user's rooms.

Postgres: ``to_tsvector('simple', text)`` with a GIN index on that expression
(migration 0005), ranked by ``ts_rank``, snippets by ``ts_headline``. The index
follows the column, so edits and deletions (which blank the text) are in step
by themselves. SQLite: an FTS5 table keyed by message id, written here in the
transaction of each send, edit and delete, ranked by ``bm25``, snippets by
``snippet()``. The ``simple`` configuration and ``unicode61`` tokenizer do not
stem: chat is written in every language, and a word matches as written
(case- and, on SQLite, accent-insensitively).

A query is the words of the search text, all of which must occur. Snippets are
HTML-escaped with the hits in ``<mark>``: the database marks hits with two
private-use characters (removed from the indexed text, so a message cannot forge
a mark), and the text is escaped before they become tags.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import F, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Replace

from chat import access
from chat.errors import BadUserInput
from chat.models import Message
from chat.search_terms import clean_search_term

FTS_TABLE = "chat_message_search"
PG_INDEX = "message_text_search_idx"
SENTINELS = ("\ue000", "\ue001")  # start and end of a hit, before escaping
CONFIG = "simple"
WORD = re.compile(r"\w+")
SNIPPET_WORDS = 16

RELEVANCE = "relevance"
NEWEST = "newest"


@dataclass(frozen=True)
class Hit:
    message_id: int
    snippet: str


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _strip_sentinels(text: str) -> str:
    return text.replace(SENTINELS[0], "").replace(SENTINELS[1], "")


def render_snippet(marked: str) -> str:
    """The database's snippet, HTML-escaped, with its hit markers as ``<mark>`` tags."""
    escaped = html.escape(marked, quote=True)
    return escaped.replace(SENTINELS[0], "<mark>").replace(SENTINELS[1], "</mark>")


# SQL with constant names only; every value is a parameter.
_DELETE = f"DELETE FROM {FTS_TABLE} WHERE rowid = %s"  # noqa: S608
_INSERT = f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (%s, %s)"  # noqa: S608
_MATCHING_IDS = f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s"  # noqa: S608


# --- Keeping the SQLite index in step (Postgres indexes the column itself) ---------------


def index_message(message: Message) -> None:
    """(Re)index a message's text. Precondition: inside the transaction that wrote it."""
    if _postgres():
        return
    with connection.cursor() as cursor:
        cursor.execute(_DELETE, [message.pk])
        if message.text and message.deleted_at is None:
            cursor.execute(_INSERT, [message.pk, _strip_sentinels(message.text)])


def unindex_message(message: Message) -> None:
    """Remove a deleted message from the index (its words must not be findable).
    Precondition: inside ``delete_message``'s transaction."""
    if _postgres():
        return  # the text is blanked, and the expression index follows it
    with connection.cursor() as cursor:
        cursor.execute(_DELETE, [message.pk])


# --- Searching ----------------------------------------------------------------------------


def clean_query(text) -> list[str]:
    """The words of a search text; ``BadUserInput`` if it is too long or has none."""
    words = WORD.findall(clean_search_term(text, field="query") or "")
    if not words:
        raise BadUserInput("Search for at least one word.", fields={"query": ["No word to search for."]})
    return words


def _fts_match(words: list[str]) -> str:
    # Each word quoted: FTS5 reads it as a plain term, never as query syntax.
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def matching(qs: QuerySet[Message], words: list[str]) -> QuerySet[Message]:
    """``qs`` narrowed to live messages containing every word."""
    qs = qs.filter(deleted_at__isnull=True)
    if _postgres():
        query = SearchQuery(" ".join(words), config=CONFIG, search_type="plain")
        return qs.annotate(search_document=SearchVector("text", config=CONFIG)).filter(search_document=query)
    return qs.filter(pk__in=RawSQL(_MATCHING_IDS, [_fts_match(words)]))  # noqa: S611 - the match is a parameter


def encode_cursor(offset: int) -> str:
    return base64.b64encode(f"search:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        prefix, offset = base64.b64decode(cursor.encode(), validate=True).decode().split(":")
        if prefix != "search" or int(offset) < 0:
            raise ValueError(cursor)
        return int(offset)
    except (ValueError, UnicodeError):
        raise BadUserInput("Invalid cursor.", fields={"after": ["Invalid cursor."]}) from None


@dataclass
class SearchPage:
    hits: list[Hit]
    total: int
    offset: int


def search_messages(actor, text, room_id=None, *, order: str = NEWEST, offset: int = 0, limit: int = 20) -> SearchPage:
    """Messages of the actor's rooms (or of ``room_id``, members only) containing every
    word of ``text``, newest first or most relevant first, with a marked snippet each."""
    actor = access.require_user(actor)
    words = clean_query(text)
    if order not in (NEWEST, RELEVANCE):
        raise BadUserInput("Unknown order.", fields={"orderBy": ["Unknown order."]})
    visible = access.messages_visible_to(actor)
    if room_id is not None:
        room, _ = access.access_room_as_member(actor, room_id)
        visible = visible.filter(room=room)
    found = matching(visible, words)
    total = found.count()
    if _postgres():
        hits = _postgres_page(found, words, order, offset, limit)
    else:
        hits = _sqlite_page(found, words, order, offset, limit)
    return SearchPage(hits=hits, total=total, offset=offset)


def _postgres_page(found: QuerySet[Message], words: list[str], order: str, offset: int, limit: int) -> list[Hit]:
    query = SearchQuery(" ".join(words), config=CONFIG, search_type="plain")
    text = Replace(Replace(F("text"), Value(SENTINELS[0]), Value("")), Value(SENTINELS[1]), Value(""))
    qs = found.annotate(
        snippet=SearchHeadline(
            text,
            query,
            config=CONFIG,
            start_sel=SENTINELS[0],
            stop_sel=SENTINELS[1],
            max_words=SNIPPET_WORDS,
            min_words=SNIPPET_WORDS // 2,
        )
    )
    if order == RELEVANCE:
        qs = qs.annotate(rank=SearchRank(SearchVector("text", config=CONFIG), query)).order_by(
            "-rank", "-created_at", "-pk"
        )
    else:
        qs = qs.order_by("-created_at", "-pk")
    return [
        Hit(pk, render_snippet(snippet)) for pk, snippet in qs.values_list("pk", "snippet")[offset : offset + limit]
    ]


def _sqlite_page(found: QuerySet[Message], words: list[str], order: str, offset: int, limit: int) -> list[Hit]:
    ids_sql, ids_params = found.values("pk").query.sql_with_params()
    ordering = (
        f"bm25({FTS_TABLE}), m.created_at DESC, m.id DESC" if order == RELEVANCE else "m.created_at DESC, m.id DESC"
    )
    # Constant names and Django's own compiled subquery; every value is a parameter.
    sql = (
        f"SELECT m.id, snippet({FTS_TABLE}, 0, %s, %s, '…', {SNIPPET_WORDS}) "  # noqa: S608
        f"FROM {FTS_TABLE} JOIN chat_message m ON m.id = {FTS_TABLE}.rowid "
        f"WHERE {FTS_TABLE} MATCH %s AND m.id IN ({ids_sql}) ORDER BY {ordering} LIMIT %s OFFSET %s"
    )
    params = [SENTINELS[0], SENTINELS[1], _fts_match(words), *ids_params, limit, offset]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Hit(pk, render_snippet(snippet)) for pk, snippet in cursor.fetchall()]
