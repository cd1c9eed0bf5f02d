"""Hostile input, generated: every query and mutation of the schema (found by
walking it, so new fields are fuzzed without touching this file), malformed
HTTP bodies, and the REST shim.

For every response: no 5xx, no ``INTERNAL_SERVER_ERROR``, no traceback text;
and a refused call (errors in the answer, or a 4xx) changed nothing in the
database. Budget: ``HYPOTHESIS_PROFILE=ci`` (default, a few hundred requests)
or ``fuzz`` (``make fuzz``, ten times more per operation).
"""

from __future__ import annotations

import json
import os
import re

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import Resolver404, resolve
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    get_named_type,
)
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from schema import schema as chat_schema
from tests.chat_world import build_world, db_state, gid
from tests.clients import token_for

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 6)),  # per operation; x8 bodies, x4 REST calls
    deadline=None,
    derandomize=True,  # the same inputs on every CI run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 150)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
BUDGET = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

GRAPHQL = chat_schema._schema
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"/|\.py\", line \d+")

# --- The schema, walked -----------------------------------------------------------------------


def root_fields(kind: str) -> list[str]:
    root = GRAPHQL.query_type if kind == "query" else GRAPHQL.mutation_type
    return sorted(root.fields) if root else []


def type_ref(gql_type) -> str:
    if isinstance(gql_type, GraphQLNonNull):
        return f"{type_ref(gql_type.of_type)}!"
    if isinstance(gql_type, GraphQLList):
        return f"[{type_ref(gql_type.of_type)}]"
    return gql_type.name


def selection(gql_type) -> str:
    """``__typename`` and the argument-free scalar fields: enough to run the resolvers."""
    named = get_named_type(gql_type)
    if isinstance(named, (GraphQLScalarType, GraphQLEnumType)):
        return ""
    if isinstance(named, (GraphQLUnionType,)):
        return "{ __typename }"
    fields = ["__typename"]
    if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
        for name, field in named.fields.items():
            if not field.args and isinstance(get_named_type(field.type), (GraphQLScalarType, GraphQLEnumType)):
                fields.append(name)
    return "{ " + " ".join(fields) + " }"


def operation(kind: str, field_name: str) -> tuple[str, dict]:
    """The operation that calls ``field_name`` with every argument as a variable."""
    root = GRAPHQL.query_type if kind == "query" else GRAPHQL.mutation_type
    field = root.fields[field_name]
    variables = ", ".join(f"${name}: {type_ref(arg.type)}" for name, arg in field.args.items())
    arguments = ", ".join(f"{name}: ${name}" for name in field.args)
    header = f"{kind} Fuzz({variables})" if variables else f"{kind} Fuzz"
    call = f"{field_name}({arguments})" if arguments else field_name
    return f"{header} {{ {call} {selection(field.type)} }}", dict(field.args)


# --- Values, hostile and plausible --------------------------------------------------------------

HOSTILE_STRINGS = [
    "",
    " ",
    "a" * 70_000,
    "😀" * 5000,
    "\x00",
    "\u202e\u0000\ud7ff",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%s%s%n",
    "null",
    "{}",
    "Room:1",
    "\n" * 1000,
]
JSON_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def id_strategy(ids: dict[str, list[int]]):
    known = [gid(type_name, pk) for type_name, pks in ids.items() for pk in pks]
    return st.one_of(
        st.sampled_from(known),  # real objects, the caller's and others' (foreign)
        st.builds(gid, st.sampled_from(["Room", "User", "Message", "Attachment", "Nope"]), st.integers(-5, 10**12)),
        st.sampled_from(["", "1", "-1", "Um9vbTox", "=====", "Um9vbTp4", "Um9vbTo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "💥"]),
    )


def value_for(gql_type, ids: dict[str, list[int]], depth: int = 0):
    """A strategy for a value of ``gql_type``: mostly well-formed, sometimes anything."""
    if isinstance(gql_type, GraphQLNonNull):
        return st.one_of(value_for(gql_type.of_type, ids, depth), st.just(None))
    if isinstance(gql_type, GraphQLList):
        return st.lists(value_for(gql_type.of_type, ids, depth + 1), max_size=4 if depth == 0 else 2)
    wrong = JSON_ANY
    if isinstance(gql_type, GraphQLInputObjectType):
        if depth > 2:
            return st.just({})
        fields = {name: value_for(field.type, ids, depth + 1) for name, field in gql_type.fields.items()}
        plausible = st.fixed_dictionaries({}, optional=fields)
        return st.one_of(plausible, plausible, wrong)
    if isinstance(gql_type, GraphQLEnumType):
        return st.one_of(st.sampled_from(list(gql_type.values)), wrong)
    name = gql_type.name
    if name == "ID":
        good = id_strategy(ids)
    elif name == "String":
        good = st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_STRINGS))
    elif name == "Int":
        good = st.one_of(st.integers(-3, 200), st.integers(-(2**70), 2**70))
    elif name == "Float":
        good = st.floats(allow_nan=False, allow_infinity=False)
    elif name == "Boolean":
        good = st.booleans()
    else:  # DateTime, JSON, Upload...
        good = st.one_of(st.text(max_size=30), st.just("2026-01-01T00:00:00Z"))
    return st.one_of(good, good, good, wrong)


# --- Assertions ---------------------------------------------------------------------------------


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in apps.get_app_config("chat").get_models()}


def snapshot() -> tuple[dict, dict]:
    return row_counts(), db_state()


def assert_safe(response, before=None) -> dict | None:
    text = response.content.decode("utf-8", "replace")
    assert response.status_code < 500, text[:2000]
    assert not TRACEBACK.search(text), text[:2000]
    assert "INTERNAL_SERVER_ERROR" not in text, text[:2000]
    body = None
    if response.get("Content-Type", "").split(";")[0].endswith("json"):
        body = json.loads(text)
    refused = response.status_code >= 400 or (isinstance(body, dict) and body.get("errors"))
    if before is not None and refused:
        assert snapshot() == before, text[:2000]
    return body


@pytest.fixture
def fuzz_world(make_user, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed, not security, here
    world = build_world(make_user)
    ids = {
        "Room": [world.public.pk, world.private.pk],
        "User": [world.owner.pk, world.member.pk, world.outsider.pk],
        "Message": [world.message.pk, world.owner_message.pk, world.private_message.pk],
    }
    callers = {
        "anonymous": None,
        "member": token_for(world.member),
        "outsider": token_for(world.outsider),
        "bad-token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
    }
    return world, ids, callers


def post_graphql(query: str, variables, token: str | None):
    headers = {"Authorization": f"JWT {token}"} if token else {}
    body = json.dumps({"query": query, "variables": variables, "operationName": "Fuzz"})
    return Client().post("/graphql/", body, content_type="application/json", headers=headers)


OPERATIONS = [("query", name) for name in root_fields("query")] + [
    ("mutation", name) for name in root_fields("mutation")
]


def test_the_walk_finds_the_whole_schema():
    names = {name for _, name in OPERATIONS}
    assert {"me", "rooms", "messages", "node", "register", "tokenAuth", "createRoom", "sendMessage"} <= names
    query, args = operation("mutation", "sendMessage")
    assert query.startswith("mutation Fuzz($input: SendMessageInput!) { sendMessage(input: $input) {")
    assert set(args) == {"input"}


@pytest.mark.slow
def test_every_operation_with_generated_arguments(fuzz_world):
    """Each query and mutation in turn (one world for all: the budget goes to requests)."""
    _, ids, callers = fuzz_world
    for kind, field_name in OPERATIONS:
        fuzz_operation(kind, field_name, ids, callers)()


def fuzz_operation(kind: str, field_name: str, ids: dict, callers: dict):
    query, args = operation(kind, field_name)
    arguments = st.fixed_dictionaries({name: value_for(arg.type, ids) for name, arg in args.items()})

    @settings(BUDGET)
    @given(variables=st.one_of(arguments, arguments, arguments, JSON_ANY), caller=st.sampled_from(sorted(callers)))
    def check(variables, caller):
        note(f"{kind} {field_name}")
        before = snapshot() if kind == "mutation" else None
        assert_safe(post_graphql(query, variables, callers[caller]), before)

    return check


CONTENT_TYPES = [
    "application/json",
    "application/graphql-response+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/xml",
    "",
]


@pytest.mark.slow
def test_malformed_bodies_and_content_types(fuzz_world):
    bodies = st.one_of(
        st.binary(max_size=300),
        JSON_ANY.map(json.dumps),
        st.builds(lambda q: json.dumps({"query": q}), st.text(max_size=200)),
        st.builds(lambda v: json.dumps({"query": "query { me { id } }", "variables": v}), JSON_ANY),
        st.sampled_from(['{"query": "mutation { register }"', "[]", "[{}]", '{"query": null}', "\xff\xfe", "{" * 5000]),
    )

    @settings(BUDGET.__class__(BUDGET, max_examples=BUDGET.max_examples * 8))
    @given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES), method=st.sampled_from(["post", "get", "put"]))
    def check(body, content_type, method):
        before = snapshot()
        client = Client()
        if method == "get":
            text = body if isinstance(body, str) else body.decode("latin1")
            response = client.get("/graphql/", {"query": text[:500]})
        else:
            response = getattr(client, method)("/graphql/", body, content_type=content_type)
        assert_safe(response, before)
        assert snapshot() == before or response.status_code == 200  # only a successful call may write

    check()


def routed(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


@pytest.mark.slow
def test_rest_shim(fuzz_world):
    _, ids, callers = fuzz_world
    room_ids = st.one_of(id_strategy(ids), st.text(max_size=20).filter(lambda s: "/" not in s and s.strip()))
    files = st.lists(
        st.builds(
            lambda name, data, ctype: SimpleUploadedFile(name, data, content_type=ctype),
            st.sampled_from(["a.png", "../../x.txt", "no-extension", "😀.pdf", "a" * 300, "x.exe"]),
            st.one_of(st.binary(max_size=200), st.just(b"\x89PNG\r\n\x1a\n" + b"0" * 50), st.just(b"%PDF-1.4 x")),
            st.sampled_from(["image/png", "application/pdf", "text/plain", "application/x-msdownload", ""]),
        ),
        max_size=3,
    )
    fields = st.fixed_dictionaries(
        {},
        optional={
            "text": st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE_STRINGS)),
            "clientId": st.text(max_size=80),
        },
    )

    @settings(BUDGET.__class__(BUDGET, max_examples=BUDGET.max_examples * 4))
    @given(
        target=st.sampled_from(["upload", "message"]),
        room=room_ids,
        data=fields,
        uploads=files,
        caller=st.sampled_from(sorted(callers)),
        raw=st.one_of(st.none(), st.binary(max_size=100)),
    )
    def check(target, room, data, uploads, caller, raw):
        before = snapshot()
        token = callers[caller]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        path = "/api/uploads/" if target == "upload" else f"/api/rooms/{room}/messages/"
        client = Client()
        if raw is not None:
            response = client.post(path, raw, content_type="application/octet-stream", headers=headers)
        else:
            payload = dict(data)
            if uploads:
                payload["file"] = uploads
            response = client.post(path, payload, headers=headers)
        assert_safe(response, before)
        if response.status_code >= 400 and routed(path):  # the view answered (not Django's URL 404 page)
            assert response["Content-Type"].startswith("application/json"), response.content[:300]
        if response.status_code == 429:
            assert int(response["Retry-After"]) >= 1

    check()
