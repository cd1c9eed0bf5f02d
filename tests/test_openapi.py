"""The REST shim's OpenAPI document: valid OpenAPI 3.1, complete, and true to the
real views (schemathesis sends generated requests and checks every answer against
it: no 500, the documented status codes, content types, headers and bodies)."""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import Client
from django.urls import URLPattern, get_resolver
from django.urls.resolvers import RoutePattern
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from chat import openapi
from tests.clients import token_for


@pytest.fixture
def document(db):
    return openapi.document()


def test_served_at_api_openapi_json(client, document):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == document


def test_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def _api_routes() -> set[str]:
    """The ``/api/`` routes of backend/urls.py, with ``<path:name>`` as ``{name}``."""
    routes = set()
    for pattern in get_resolver().url_patterns:
        # Routes only: the regex catch-all that answers JSON 404s is not an endpoint.
        if (
            isinstance(pattern, URLPattern)
            and isinstance(pattern.pattern, RoutePattern)
            and str(pattern.pattern).startswith("api/")
        ):
            routes.add(
                "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + _camel(m.group(1)) + "}", str(pattern.pattern))
            )
    return routes


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_describes_every_api_route(document):
    assert set(document["paths"]) == _api_routes()


@pytest.mark.parametrize("path", ["/api/nope", "/api/rooms/2%0Ax/messages/", "/api/attachments/1/other"])
def test_unknown_api_paths_answer_json_404(path, db):
    client = Client(enforce_csrf_checks=True)
    response = client.post(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"code": "NOT_FOUND", "message": "No such API endpoint."}}


def test_limits_come_from_the_settings(settings, db):
    settings.MAX_UPLOAD_BYTES = 1234
    settings.MAX_FILES_PER_MESSAGE = 3
    post = openapi.document()["paths"]["/api/rooms/{roomId}/messages/"]["post"]
    files = post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["file"]
    assert files["maxItems"] == 3 and "1234 bytes" in files["description"]


def test_every_error_code_of_the_views_is_documented():
    from chat import errors, views

    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.ChatError)}
    codes.add(views.MethodNotAllowed.code)
    assert codes <= set(openapi.ERROR_CODES)


# --- schemathesis against the real views ------------------------------------------


@pytest.fixture
def api_schema(db):
    # Django's WSGI handler closes the database connection after each request, which
    # would close the test database; its own test client disconnects the same signal.
    signals.request_finished.disconnect(close_old_connections)
    signals.request_started.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/openapi.json", WSGIHandler())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def signed_in(db, room, alice):
    """A member of a room: generated requests carry her token, so they reach the
    views' real work (and their refusals), not only the 401."""
    return {"Authorization": f"Bearer {token_for(alice)}"}


def _check_every_operation(api_schema, headers: dict | None, examples: int) -> set[str]:
    """Generated requests for each operation, each answer checked against the
    document (schemathesis' checks: no server error, documented status, content
    type, headers and body schema). Returns the operations that ran."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            # Whether a schema-valid request is accepted depends on what no schema can
            # say (the sniffed type of the file's bytes, the caller's rooms): every
            # other check applies, including "refusals are documented and typed".
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
    return {operation.label for operation in operations}


# Loaded from its own URL, schemathesis leaves out the document's endpoint itself.
REST_OPERATIONS = {
    "POST /api/uploads/",
    "POST /api/rooms/{roomId}/messages/",
    "GET /api/attachments/{attachmentId}/download",
    "GET /api/attachments/{attachmentId}/thumbnail",
    "GET /api/avatars/{avatarId}/{size}",
}


def test_views_answer_as_documented(api_schema, signed_in):
    assert _check_every_operation(api_schema, signed_in, examples=15) == REST_OPERATIONS


def test_anonymous_calls_answer_as_documented(api_schema):
    assert _check_every_operation(api_schema, None, examples=5) == REST_OPERATIONS
