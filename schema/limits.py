"""Abuse limits of the GraphQL layer (OWASP GraphQL cheat sheet).

- Document limits, enforced before execution by Strawberry's own extensions:
  depth (``GRAPHQL_MAX_DEPTH``), tokens (``GRAPHQL_MAX_TOKENS``, parsing stops
  there) and aliases (``GRAPHQL_MAX_ALIASES``). Batching (several operations
  in one HTTP request) is off unless ``GRAPHQL_MAX_OPERATIONS`` > 1.
- Introspection is off unless ``GRAPHQL_INTROSPECTION`` (on in development);
  with it off, "Did you mean ...?" suggestions are removed from error messages
  too, so the schema cannot be rebuilt from guesses.
- Every error a client sees carries ``extensions.code``: the errors graphql-core
  raises before execution get Apollo's codes here.
"""

from __future__ import annotations

import contextlib
import re
from functools import cache
from typing import Any

from django.conf import settings
from graphql import DocumentNode, FragmentDefinitionNode, ValidationContext, ValidationRule, Visitor, visit
from graphql.error import GraphQLError, GraphQLSyntaxError
from strawberry import scalar
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.file_uploads import Upload
from strawberry.relay.types import InvalidGlobalIDError

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
BAD_USER_INPUT = "BAD_USER_INPUT"


# Parsed and validated documents are cached (an app sends the same few operations
# over and over): validation was a fifth of a history request (issue 8).
DOCUMENT_CACHE_SIZE = 256


@cache
def _limit_rules(max_depth: int, max_aliases: int) -> tuple:
    """The depth and alias rules as classes made once per limit values: Strawberry's
    limiters build new classes per request, which defeats the validation cache
    (its key holds the rules)."""
    return (_depth_rule(max_depth), alias_rule(max_aliases))


class _FragmentSpreads(Visitor):
    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def enter_fragment_spread(self, node, *args):
        self.names.add(node.name.value)


def _has_unknown_fragments(document: DocumentNode) -> bool:
    defined = {d.name.value for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    spreads = _FragmentSpreads()
    visit(document, spreads)
    return not spreads.names <= defined


def _depth_rule(max_depth: int) -> type[ValidationRule]:
    """Strawberry's depth rule, skipped for a document that spreads a fragment it
    does not define: the rule looks each one up and would crash (a ``KeyError``
    answered without a code), while graphql-core's own rule reports it as an
    unknown fragment."""
    base = depth_rule(max_depth, None, None)

    class DepthLimit(base):
        def __init__(self, context: ValidationContext) -> None:
            if _has_unknown_fragments(context.document):
                ValidationRule.__init__(self, context)
            else:
                super().__init__(context)

    return DepthLimit


class DocumentCache(ParserCache):
    """Strawberry's ParserCache, except that a document that does not parse is left
    to Strawberry's own parse, which reports the error as a GraphQL error (raised
    from the hook, it would escape Strawberry's handling)."""

    def on_parse(self):
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        yield


def limit_extensions() -> list:
    """The document limits and the document caches, as schema extension factories
    (one instance per request), from settings."""
    return [
        lambda: MaxTokensLimiter(max_token_count=settings.GRAPHQL_MAX_TOKENS),
        lambda: AddValidationRules(list(_limit_rules(settings.GRAPHQL_MAX_DEPTH, settings.GRAPHQL_MAX_ALIASES))),
        lambda: DocumentCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
    ]


def batching_config() -> dict | None:
    """Strawberry's ``batching_config``: None (a JSON list body is refused) unless enabled."""
    if settings.GRAPHQL_MAX_OPERATIONS > 1:
        return {"max_operations": settings.GRAPHQL_MAX_OPERATIONS}
    return None


# graphql-core and Strawberry word their limit errors like this (checked in tests/test_limits.py).
_TOO_COMPLEX = (
    re.compile(r"exceeds maximum operation depth of \d+"),
    re.compile(r"^\d+ aliases found\. Allowed: \d+"),
    re.compile(r"Document contains more than \d+ tokens"),
)
_SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")


def code_for(error: GraphQLError, pre_execution: bool) -> str:
    """The ``extensions.code`` of a GraphQL error that wraps no exception.

    ``pre_execution``: raised while parsing or validating the document. The rest
    (variable coercion, argument conversion such as a malformed global ID) is
    about the values the client sent: ``BAD_USER_INPUT``.
    """
    message = error.message or ""
    if any(pattern.search(message) for pattern in _TOO_COMPLEX):
        return QUERY_TOO_COMPLEX
    if isinstance(error, GraphQLSyntaxError) or message.startswith("Syntax Error"):
        return PARSE_FAILED
    if not pre_execution or isinstance(error, InvalidGlobalIDError):
        return BAD_USER_INPUT
    return VALIDATION_FAILED


def with_code(error: GraphQLError, pre_execution: bool = True) -> GraphQLError:
    """``error`` with its ``extensions.code`` (kept if it has one) and, when
    introspection is off, without field-name suggestions."""
    extensions: dict[str, Any] = dict(error.extensions or {})
    extensions.setdefault("code", code_for(error, pre_execution))
    message = error.message
    if not settings.GRAPHQL_INTROSPECTION:
        message = _SUGGESTION.sub("", message)
    return reworded(error, message, extensions)


def reworded(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    """``error`` at the same place (nodes, source, positions, path) with a new
    message and extensions, and no original exception (nothing internal leaks)."""
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


# --- Uploads -------------------------------------------------------------------------------


def _parse_upload(value: Any) -> Any:
    """Only a file part of a multipart request is an ``Upload``. Strawberry's scalar takes
    any JSON value (``{"file": "x"}`` reached the upload service as a string: found by
    tests/test_fuzz.py); refusing here makes it a variable error, ``BAD_USER_INPUT``."""
    if not (hasattr(value, "read") and hasattr(value, "name")):
        raise ValueError("Upload must be a file sent as a multipart request.")
    return value


UploadScalar = scalar(
    name="Upload",
    description="Represents a file upload.",
    serialize=lambda value: value,
    parse_value=_parse_upload,
)


def scalar_overrides() -> dict:
    return {Upload: UploadScalar}
