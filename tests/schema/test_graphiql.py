"""GraphiQL at /graphql/: our own page, from our own static files, under a strict CSP."""

import asyncio
import re

import pytest
from django.contrib.staticfiles import finders
from django.test import RequestFactory

from schema import schema
from schema.views import GraphQLView

pytestmark = pytest.mark.django_db

ASSETS = re.compile(r'(?:src|href)="([^"]+)"')


def test_graphiql_page_loads_only_this_servers_static_files(client):
    response = client.get("/graphql/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    html = response.content.decode()
    assets = ASSETS.findall(html)
    assert {asset.rsplit("/", 1)[-1] for asset in assets} == {
        "graphiql.min.css",
        "graphiql-page.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "graphiql-page.js",
    }
    for asset in assets:
        assert asset.startswith("/static/graphiql/")
        assert finders.find(asset.removeprefix("/static/")), asset
    assert "unpkg" not in html and "cdn" not in html.lower()
    assert not re.search(r"<script>|<script[^>]*>\s*[^<\s]", html), "inline script"


def test_graphiql_page_has_a_strict_content_security_policy(client):
    response = client.get("/graphql/", HTTP_ACCEPT="text/html")

    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]


def test_vendored_packages_keep_their_licenses_and_versions():
    for name in ("LICENSE.react", "LICENSE.react-dom", "LICENSE.graphiql", "VERSIONS"):
        assert finders.find(f"graphiql/vendor/{name}"), name
    versions = open(finders.find("graphiql/vendor/VERSIONS")).read()
    assert "graphiql 3.8.3 sha512-" in versions and "react 18.3.1 sha512-" in versions


def test_graphiql_switched_off_serves_no_page(settings):
    settings.GRAPHIQL_ENABLED = False
    view = GraphQLView.as_view(schema=schema)  # the setting is read when the view is made

    response = asyncio.run(view(RequestFactory().get("/graphql/", HTTP_ACCEPT="text/html")))

    assert "Content-Security-Policy" not in response
    assert b"graphiql" not in response.content.lower()
