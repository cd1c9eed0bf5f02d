"""The deployment files say what the server really reads and runs: `.env.example`
lists every setting, docker-compose migrates once before the replicas start and
prunes on a schedule, with commands that exist. (No Docker engine runs on the
test machines: the files are checked as data, the commands they name for real.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
ENV_READ = re.compile(r'(?:env_int|env_bool|env_list|env_float|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"')


def settings_read() -> set[str]:
    return set(ENV_READ.findall((ROOT / "backend" / "settings.py").read_text()))


def env_example_names() -> set[str]:
    """Names set (``NAME=``) or shown with their default (``# NAME=``) in .env.example."""
    return set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE))


def test_settings_are_read_from_the_environment():
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "MAX_UPLOAD_BYTES"} <= settings_read()


def test_env_example_lists_every_setting():
    missing = settings_read() - env_example_names()
    assert not missing, f"add these to .env.example: {sorted(missing)}"


def test_env_example_names_nothing_the_server_ignores():
    compose_only = {"POSTGRES_PASSWORD", "PRUNE_INTERVAL_SECONDS"}
    assert env_example_names() - settings_read() == compose_only


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_migrations_run_once_before_the_replicas(compose):
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    replicas = [name for name in services if name.startswith("web")]
    assert len(replicas) >= 2
    for name in replicas:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "migrate" not in str(services[name].get("command", ""))
    command = re.search(r"^CMD (.*)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE).group(1)
    assert "migrate" not in command and "daphne" in command


def test_pruning_runs_on_a_schedule(compose):
    maintenance = compose["services"]["maintenance"]
    script = " ".join(maintenance["command"])
    assert "python manage.py prune_events" in script and "python manage.py prune_uploads" in script
    assert "while true" in script and "sleep" in script and "PRUNE_INTERVAL_SECONDS" in script
    assert maintenance["restart"] == "unless-stopped"
    assert maintenance["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert {"prune_events", "prune_uploads"} <= set(get_commands())
