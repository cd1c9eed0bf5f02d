# The project's commands. `make run` and `make test` do all set-up on a fresh
# machine: create the virtualenv, install the pinned requirements, migrate.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install migrate run test lint format audit bench bench-quick bench-peer test-e2e schema fuzz clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

run: migrate
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) backend.asgi:application

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The fuzz suite with a large budget (CI runs it with HYPOTHESIS_PROFILE=ci, the default);
# FUZZ_EXAMPLES=N sets the examples per operation.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/pytest tests/test_fuzz.py -p no:randomly $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Known vulnerabilities in every installed package (the pinned requirements and
# what they pull in), from PyPI's advisory data; fails if one is found. pip-audit
# lives in a venv of its own so that its dependencies never move the project's.
AUDIT_VENV ?= .venv-audit
audit: install
	test -x $(AUDIT_VENV)/bin/pip-audit || ($(PYTHON) -m venv $(AUDIT_VENV) && $(AUDIT_VENV)/bin/pip install --quiet pip-audit==2.10.1)
	$(PY) -m pip freeze --exclude-editable > $(AUDIT_VENV)/requirements-frozen.txt
	$(AUDIT_VENV)/bin/pip-audit --requirement $(AUDIT_VENV)/requirements-frozen.txt --no-deps --disable-pip --progress-spinner off

# Export the GraphQL SDL to schema.graphql (committed; tests/schema/test_sdl.py checks it).
schema: install
	$(PY) scripts/export_schema.py

# Real clients (Apollo, graphql-ws, subscriptions-transport-ws, a multipart
# client, the graphql-http audit, chromium via playwright-core) against live
# daphne servers the tests start; see tests/e2e/README.md.
test-e2e: install
	bash tests/e2e/scripts/ensure-chromium.sh
	cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error
	cd tests/e2e && npm test

# Benchmarks against a bare Channels floor and a Node.js peer (docs/benchmarks.md):
# `bench` is the full run in both modes (minutes), `bench-quick` a small run
# (under a minute, no pass/fail on speed: it fails only if the harness breaks).
# Without node/npm the peer's side is skipped (the tables say so).
bench: install bench-peer
	$(PY) -m bench.run

bench-quick: install bench-peer
	$(PY) -m bench.run --quick

bench-peer:
	@if command -v npm >/dev/null 2>&1; then \
		cd bench/peer_node && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: the benchmark runs without the Node peer"; \
	fi

clean:
	rm -rf $(VENV) $(AUDIT_VENV) .pytest_cache media staticfiles bench/results bench/peer_node/node_modules
