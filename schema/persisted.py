"""Persisted queries: Apollo's automatic persisted queries (APQ) and trusted documents.

APQ (``GRAPHQL_PERSISTED_QUERIES``, on by default): a client sends
``extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`` instead of the
document. Known hash: the stored document runs. Unknown: the answer is the error
``PERSISTED_QUERY_NOT_FOUND``, and the client sends the document with its hash once,
which stores it (in Django's cache, ``GRAPHQL_PERSISTED_QUERY_TTL`` seconds) after it
parsed and validated. A hash-only query fits in a GET URL, which CDNs cache.

Trusted documents (``GRAPHQL_TRUSTED_DOCUMENTS=<manifest.json>``): only the documents
of the manifest run, for first-party clients (scripts/trusted_documents.py writes it
from the web chat's and the e2e clients' operations). A client may send the hash
alone or the full text; anything else is refused, over every transport (the check
is a schema extension, so WebSocket operations obey it too). APQ registration is off
in this mode: the manifest is the only source of documents.

Codes: ``PERSISTED_QUERY_NOT_FOUND`` and ``PERSISTED_QUERY_NOT_SUPPORTED`` (Apollo's,
which Apollo Client's persisted-queries link acts on), ``PERSISTED_QUERY_NOT_IN_LIST``
(a hash that is not in the manifest) and ``QUERY_NOT_IN_SAFELIST`` (a document that is
not), as Apollo's router names them; ``BAD_REQUEST`` for a malformed extension or a
hash that does not match the document sent with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

CACHE_PREFIX = "apq:"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PersistedQueryError(Exception):
    """A request refused before GraphQL runs: its code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 200):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


# --- Trusted documents manifest -----------------------------------------------------------


def _manifest_operations(data: Any) -> dict[str, str]:
    """hash -> document from Apollo's manifest format
    (``{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body", ...}]}``)
    or a plain ``{"<sha256>": "<document>"}`` map (Relay, GraphQL Code Generator)."""
    if isinstance(data, dict) and isinstance(data.get("operations"), list):
        pairs = [(item.get("id"), item.get("body")) for item in data["operations"] if isinstance(item, dict)]
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        pairs = []
    operations = {}
    for key, body in pairs:
        if not isinstance(key, str) or not isinstance(body, str) or sha256_hex(body) != key.lower():
            raise ImproperlyConfigured(f"GRAPHQL_TRUSTED_DOCUMENTS: entry {key!r} is not the sha256 of its document.")
        operations[key.lower()] = body
    if not operations:
        raise ImproperlyConfigured("GRAPHQL_TRUSTED_DOCUMENTS: the manifest lists no operation.")
    return operations


@lru_cache(maxsize=4)
def _load_manifest(path: str, mtime_ns: int) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ImproperlyConfigured(f"GRAPHQL_TRUSTED_DOCUMENTS: cannot read {path}: {error}") from error
    return _manifest_operations(data)


def trusted_documents() -> dict[str, str] | None:
    """The manifest (hash -> document), or None when trusted-documents mode is off.
    Read again when the file changes (a deploy that replaces it needs no restart)."""
    path = settings.GRAPHQL_TRUSTED_DOCUMENTS
    if not path:
        return None
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError as error:
        raise ImproperlyConfigured(f"GRAPHQL_TRUSTED_DOCUMENTS: cannot read {path}: {error}") from error
    return _load_manifest(str(path), mtime)


# --- The request side (HTTP) -----------------------------------------------------------------


def _requested_hash(extensions: Any) -> str | None:
    if not isinstance(extensions, dict) or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedQueryError("BAD_REQUEST", "Unsupported persistedQuery version: use 1.", 400)
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not _SHA256.match(digest.lower()):
        raise PersistedQueryError("BAD_REQUEST", "persistedQuery.sha256Hash must be a hex SHA-256.", 400)
    return digest.lower()


def resolve_request(data):
    """``data`` (Strawberry's ``GraphQLRequestData``) with the document to run, looked
    up from its persisted-query hash when it has one; raises ``PersistedQueryError``."""
    digest = _requested_hash(data.extensions)
    query = data.query if isinstance(data.query, str) else None
    manifest = trusted_documents()
    if digest is None:
        return data  # a plain request; in trusted mode the schema extension checks its text
    if query is not None and sha256_hex(query) != digest:
        raise PersistedQueryError("BAD_REQUEST", "provided sha does not match query", 400)
    if manifest is not None:
        if digest not in manifest:
            raise PersistedQueryError(
                "PERSISTED_QUERY_NOT_IN_LIST", "This operation is not in the trusted documents.", 400
            )
        return replace(data, query=manifest[digest])
    if not settings.GRAPHQL_PERSISTED_QUERIES:
        raise PersistedQueryError("PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported")
    if query is not None:
        return data  # registered after it validates (remember_document)
    stored = cache.get(CACHE_PREFIX + digest)
    if stored is None:
        raise PersistedQueryError("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
    return replace(data, query=stored)


def remember_document(data, result_is_valid: bool) -> None:
    """Stores an APQ registration (a document sent with its hash) once it proved a valid
    operation: the cache never holds text that is not a document of this schema."""
    if not result_is_valid or not settings.GRAPHQL_PERSISTED_QUERIES or trusted_documents() is not None:
        return
    try:
        digest = _requested_hash(data.extensions)
    except PersistedQueryError:
        return
    if digest is not None and isinstance(data.query, str):
        cache.set(CACHE_PREFIX + digest, data.query, timeout=settings.GRAPHQL_PERSISTED_QUERY_TTL)


# --- Every transport: only trusted documents run ------------------------------------------


class TrustedDocumentsOnly(SchemaExtension):
    """In trusted-documents mode, refuses any document that is not in the manifest,
    before it is validated or run, whatever the transport."""

    def on_validate(self) -> Iterator[None]:
        manifest = trusted_documents()
        context = self.execution_context
        if manifest is not None and (context.query is None or sha256_hex(context.query) not in manifest):
            context.pre_execution_errors = [
                GraphQLError(
                    "Only trusted documents run on this server: send a listed operation or its hash.",
                    extensions={"code": "QUERY_NOT_IN_SAFELIST"},
                )
            ]
        yield
