"""HTTP transport: Strawberry's async Django view, so Django's middleware and
streaming upload handlers apply. Only the JWT authenticates: a session cookie
(the admin's) never does, which is why /graphql/ needs no CSRF token.

GraphQL over HTTP (the GraphQL Foundation's spec) on top of Strawberry: the
response media type is negotiated from ``Accept``. A client that accepts
``application/graphql-response+json`` gets it, and a request error (the
document does not parse or validate, or the variables do not coerce) answers
400 with ``errors`` and no ``data``, as that media type requires. Clients that
ask for ``application/json`` (or send no ``Accept``) keep the legacy answer:
200 with the GraphQL response, whatever happened.
"""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from cross_web import HTTPException
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.staticfiles.storage import staticfiles_storage
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView
from strawberry.exceptions import MissingQueryError, StrawberryGraphQLError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from chat import request_id, tokens
from chat.errors import ChatError, ServiceUnavailable
from schema import persisted
from schema.context import ChatContext
from schema.live import http_stream


async def authenticate(header: str | None):
    """(user, error) for an Authorization header; never raises."""
    try:
        user = await sync_to_async(tokens.user_from_authorization)(header)
    except ChatError as error:
        return AnonymousUser(), error
    except DatabaseError:
        # The token's user cannot be looked up: every field that asks who calls
        # answers SERVICE_UNAVAILABLE (a 500 from the view otherwise).
        return AnonymousUser(), ServiceUnavailable()
    return (user or AnonymousUser()), None


# extensions.code of the errors answered before GraphQL runs (transport level).
HTTP_ERROR_CODES = {405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
SUBSCRIPTION_OVER_HTTP = (
    "Subscriptions are not served by a plain HTTP request: subscribe over WebSocket at /graphql/ "
    "(graphql-transport-ws or graphql-ws), or over HTTP with `Accept: text/event-stream` (GraphQL over SSE) "
    "or `Accept: multipart/mixed;subscriptionSpec=1.0` (multipart subscriptions)."
)

# The GraphiQL page loads everything from this server's static files, so its policy
# allows no other origin and no inline script or style. GraphiQL's stylesheet carries
# its fonts and icons as data: URLs.
GRAPHIQL_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
APPLICATION_JSON = "application/json"
# The GraphiQL page's files (chat/static/graphiql/), by their name in its template.
GRAPHIQL_ASSETS = {
    "graphiql_css": "graphiql/vendor/graphiql.min.css",
    "page_css": "graphiql/graphiql-page.css",
    "react_js": "graphiql/vendor/react.production.min.js",
    "react_dom_js": "graphiql/vendor/react-dom.production.min.js",
    "graphiql_js": "graphiql/vendor/graphiql.min.js",
    "page_js": "graphiql/graphiql-page.js",
}


def _static_url(path: str) -> str:
    """The URL of a static file: hashed by the manifest storage after `collectstatic`;
    without a manifest entry (a server started without it) the plain name, which
    `collectstatic` also writes, rather than a 500 for the whole page."""
    try:
        return staticfiles_storage.url(path)
    except ValueError:
        return settings.STATIC_URL + path


def _media_ranges(accept: str):
    """(type, q) pairs of an Accept header, in the order given."""
    for part in accept.split(","):
        media_type, *params = (item.strip() for item in part.split(";"))
        if not media_type:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        yield media_type.lower(), q


def negotiate_media_type(accept: str | None) -> str:
    """The response media type for an ``Accept`` header.

    ``application/graphql-response+json`` when the client names it with the
    highest preference; ``application/json`` otherwise: for ``*/*``, a missing
    header, or one naming neither (the spec lets a server answer legacy JSON
    rather than 406, which keeps naive clients working).
    """
    best_type, best_q = APPLICATION_JSON, 0.0
    for media_type, q in _media_ranges(accept or ""):
        if q <= 0:
            continue
        if media_type == GRAPHQL_RESPONSE_JSON and q >= best_q:
            best_type, best_q = GRAPHQL_RESPONSE_JSON, q
        elif media_type in (APPLICATION_JSON, "application/*", "*/*") and q > best_q:
            best_type, best_q = APPLICATION_JSON, q
    return best_type


def is_request_error(result) -> bool:
    """True when the operation never executed: parse, validation or variable
    coercion errors. Execution errors always carry a ``path``; errors raised
    before execution never do, and leave ``data`` unset."""
    return result.data is None and bool(result.errors) and all(not e.path for e in result.errors)


@method_decorator(csrf_exempt, name="dispatch")
class GraphQLView(AsyncGraphQLView):
    def __init__(self, **kwargs):
        kwargs.setdefault("graphql_ide", "graphiql" if settings.GRAPHIQL_ENABLED else None)
        kwargs.setdefault("multipart_uploads_enabled", True)
        super().__init__(**kwargs)

    async def render_graphql_ide(self, request: HttpRequest) -> HttpResponse:
        """GraphiQL from our own static files (chat/templates/graphiql/index.html),
        instead of Strawberry's page, which loads React and GraphiQL from a CDN."""
        assets = {name: _static_url(path) for name, path in GRAPHIQL_ASSETS.items()}
        html = render_to_string("graphiql/index.html", {"endpoint": request.path, **assets}, request=request)
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = GRAPHIQL_CSP
        response["Cache-Control"] = "no-store"
        return response

    async def get_context(self, request: HttpRequest, response) -> ChatContext:
        user, error = await authenticate(request.headers.get("Authorization"))
        request.user = user  # read by strawberry-django's permission extensions
        return ChatContext(request=request, response=response, user=user, auth_error=error)

    async def get_sub_response(self, request: HttpRequest):
        sub_response = await super().get_sub_response(request)
        sub_response.graphql_media_type = negotiate_media_type(request.headers.get("Accept"))
        sub_response.graphql_request_error = False
        return sub_response

    async def parse_http_body(self, request_adapter):
        """The request's operation, its document looked up by hash for persisted queries."""
        data = await super().parse_http_body(request_adapter)
        if isinstance(data, list):
            return [persisted.resolve_request(item) for item in data]
        return persisted.resolve_request(data)

    async def execute_single(self, request, request_adapter, sub_response, context, root_value, request_data):
        """Strawberry's ``execute_single`` (one query or mutation answered with one
        JSON result), except that a subscription is a request error: this path
        would execute it as a query and fail on its stream. Subscriptions over
        HTTP take the streaming transports, which never come here."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        if not self.allow_queries_via_get and request_adapter.method == "GET":
            allowed -= {OperationType.QUERY}
        try:
            result = await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from None
        except InvalidOperationTypeError as error:
            if error.operation_type == OperationType.SUBSCRIPTION:
                raise HTTPException(400, SUBSCRIPTION_OVER_HTTP) from None
            raise HTTPException(400, error.as_http_error_reason(request_adapter.method)) from None
        except MissingQueryError:
            raise HTTPException(400, "No GraphQL query found in the request") from None
        request_error = is_request_error(result)
        persisted.remember_document(request_data, result_is_valid=not request_error)
        if request_error and getattr(sub_response, "graphql_media_type", None) == GRAPHQL_RESPONSE_JSON:
            sub_response.graphql_request_error = True
            sub_response.status_code = 400
        if request.method == "GET":
            self._cache_headers(request, sub_response, cacheable=not result.errors)
        return result

    @staticmethod
    def _cache_headers(request: HttpRequest, sub_response, cacheable: bool) -> None:
        """GET answers (queries only; a persisted query's hash fits in the URL) may be
        cached by a CDN, but never one that depends on who asks: an authenticated answer
        is private, and caches key on the token and the negotiated media type."""
        sub_response["Vary"] = "Accept, Authorization"
        max_age = settings.GRAPHQL_GET_MAX_AGE
        if request.headers.get("Authorization") or not cacheable or max_age <= 0:
            sub_response["Cache-Control"] = "private, no-store"
        else:
            sub_response["Cache-Control"] = f"public, max-age={max_age}"

    def create_response(self, response_data, sub_response):
        media_type = getattr(sub_response, "graphql_media_type", APPLICATION_JSON)
        if getattr(sub_response, "graphql_request_error", False) and isinstance(response_data, dict):
            response_data = {key: value for key, value in response_data.items() if key != "data"}
        response = super().create_response(response_data, sub_response)
        response["Content-Type"] = f"{media_type}; charset=utf-8"
        return response

    def parse_json(self, data):
        """Strawberry's JSON parsing, refusing with 400 what it would crash on (a 500;
        found by tests/test_fuzz.py): a body that is not UTF-8, a body that is JSON
        but not an object (``null``, ``5``, ``[1]``), an ``operationName`` that is not
        a string. Query-string values (``str``) keep Strawberry's own checks.

        JSON nested deeper than the interpreter's recursion limit (a body or a
        ``variables`` query parameter of ``[[[[...``) is refused the same way:
        ``json`` raises ``RecursionError`` for it."""
        try:
            decoded = self.decode_json(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise HTTPException(400, "Unable to parse request body as JSON") from None
        if isinstance(data, bytes):
            for item in decoded if isinstance(decoded, list) else [decoded]:
                if not isinstance(item, dict):
                    raise HTTPException(400, "The request body must be a JSON object.")
                if not isinstance(item.get("operationName"), (str, type(None))):
                    raise HTTPException(400, "The GraphQL operation's `operationName` must be a string or null.")
        return decoded

    async def run(self, request, context=UNSET, root_value=UNSET):
        """Strawberry's request handling, except for a request that asks for a stream
        (``Accept: text/event-stream`` or multipart subscriptions): schema/live/http_stream.py."""
        framing = http_stream.framing_for(request) if isinstance(request, HttpRequest) else None
        if framing is None:
            return await super().run(request, context, root_value)
        request_adapter = self.request_adapter_class(request)
        if not self.is_request_allowed(request_adapter):
            raise HTTPException(405, "GraphQL only supports GET and POST requests.")
        sub_response = await self.get_sub_response(request)
        if context is UNSET:
            context = await self.get_context(request, response=sub_response)
        if root_value is UNSET:
            root_value = await self.get_root_value(request)
        try:
            request_data = await self.parse_http_body(request_adapter)
        except json.JSONDecodeError:
            raise HTTPException(400, "Unable to parse request body as JSON") from None
        except KeyError:
            raise HTTPException(400, "File(s) missing in form data") from None
        if isinstance(request_data, list):
            raise HTTPException(400, f"Batching is not supported over {framing.protocol}.")
        return await http_stream.serve(self, request, request_data, context, root_value, framing)

    def remember_document(self, request_data) -> None:
        """An APQ registration of a streamed operation that proved valid."""
        persisted.remember_document(request_data, result_is_valid=True)

    async def request_error_response(self, request: HttpRequest, request_data, result) -> HttpResponse:
        """A streamed operation refused before it ran (parse, validation, cost): 400
        with its errors, as graphql-sse's distinct-connections mode answers."""
        persisted.remember_document(request_data, result_is_valid=False)
        response_data = await self.process_result(request, result)
        body = self.encode_json({"errors": response_data.get("errors") or []})
        media_type = negotiate_media_type(request.headers.get("Accept"))
        return HttpResponse(body, status=400, content_type=f"{media_type}; charset=utf-8")

    async def dispatch(self, request: HttpRequest, *args, **kwargs):
        """Strawberry answers its request errors (bad JSON, wrong method, missing
        query...) as text/plain; we answer them as GraphQL responses with
        ``errors`` only, in the negotiated media type, so clients can parse them."""
        try:
            return await self.run(request=request)
        except HTTPException as caught:
            status, message, code = caught.status_code, caught.reason, HTTP_ERROR_CODES.get(caught.status_code)
        except persisted.PersistedQueryError as caught:
            status, message, code = caught.status, caught.message, caught.code
        media_type = negotiate_media_type(request.headers.get("Accept"))
        extensions = {"code": code or "BAD_REQUEST"}
        if request_id.current() is not None:
            extensions["requestId"] = request_id.current()
        error = StrawberryGraphQLError(message, extensions=extensions)
        body = self.encode_json({"errors": [error.formatted]})
        response = HttpResponse(body, status=status, content_type=f"{media_type}; charset=utf-8")
        if request.method == "GET":
            response["Cache-Control"] = "private, no-store"  # never cache "not found": it is registered next
        if status == 405:
            response["Allow"] = "GET, POST"
        return response
