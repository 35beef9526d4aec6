"""Fail fast, in real processes: a server with a misconfiguration refuses to start and says why (daphne, uvicorn and
gunicorn run no system checks), ``manage.py check`` lists the same errors as check messages, and a push that can
reach no server process says so once."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import import_module

import pytest
from asgiref.sync import sync_to_async

from django_stomp_push import push
from tests.servers import TESTPROJECT, DaphneServer, Project, free_port
from tests.stompclient import StompTestClient
from tests.test_consumer import connected, sign_in

#: Three errors at once: an invalid value (E001), a channel-layer alias with no layer (E002), a handler module
#: that does not import (E007).
BROKEN = {"HEARTBEAT": "fast", "CHANNEL_LAYER": "nope", "HANDLER_MODULES": ["demo.stomp", "demo.no_such_handlers"]}
BROKEN_IDS = ("stomp_push.E001", "stomp_push.E002", "stomp_push.E007")

#: The test project without django.contrib.sessions, whose model the db session engine needs (E006).
WITHOUT_SESSIONS = """
from testproject.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django.contrib.sessions"]  # noqa: F405
"""


@pytest.fixture
def project(tmp_path) -> Project:
    """The test project's environment; nothing here reaches its database."""
    return Project(tmp_path / "db.sqlite3")


def without_sessions(project: Project) -> dict[str, str]:
    """Environment variables that run ``project`` without django.contrib.sessions."""
    directory = project.db_path.parent
    (directory / "settings_without_sessions.py").write_text(WITHOUT_SESSIONS)
    path = project.env()["PYTHONPATH"]
    return {"DJANGO_SETTINGS_MODULE": "settings_without_sessions", "PYTHONPATH": f"{directory}:{path}"}


def start_server(project: Project, server: str, **env: str) -> subprocess.CompletedProcess:
    """Start ``server`` on the test project's ASGI application; return once it exits (within 60 s)."""
    command = DaphneServer(project, free_port(), {"GUNICORN_WORKERS": "1"}, server=server).command()
    return subprocess.run(
        [sys.executable, *command, "testproject.asgi:application"],
        env=project.env(**env),
        cwd=str(TESTPROJECT),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("server", ["daphne", "uvicorn", "gunicorn"])
def test_a_server_with_bad_settings_refuses_to_start_and_lists_every_error(project, server):
    if server == "gunicorn":
        pytest.importorskip("gunicorn", reason="gunicorn is not installed (it is in the test extra)")
    result = start_server(project, server, STOMP_PUSH_JSON=json.dumps(BROKEN))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "django-stomp-push cannot start: 3 system check error(s)" in output
    for check_id in BROKEN_IDS:
        assert check_id in output
    assert "demo.no_such_handlers" in output


def test_a_server_without_the_sessions_app_refuses_to_start(project):
    result = start_server(project, "daphne", **without_sessions(project))
    assert result.returncode != 0
    assert (
        "stomp_push.E006: SESSION_ENGINE 'django.contrib.sessions.backends.db' needs a session model" in result.stderr
    )
    assert "Add 'django.contrib.sessions'" in result.stderr


def test_manage_py_check_lists_the_errors_as_check_messages_not_a_traceback(project):
    result = project.manage("check", STOMP_PUSH_JSON=json.dumps(BROKEN))
    assert result.returncode == 1
    assert "SystemCheckError" in result.stderr
    for check_id in BROKEN_IDS:
        assert result.stderr.count(f"({check_id})") == 1
    assert "Traceback" not in result.stderr
    assert "cannot start" not in result.stderr  # the ASGI module was imported by the check without raising


def test_manage_py_check_reports_a_missing_sessions_app_instead_of_crashing(project):
    result = project.manage("check", **without_sessions(project))
    assert result.returncode == 1
    assert "(stomp_push.E006)" in result.stderr
    assert "Traceback" not in result.stderr


def test_manage_py_check_passes_for_the_test_project(project):
    result = project.manage("check")
    assert result.returncode == 0, result.stderr
    assert "stomp_push" not in result.stdout + result.stderr


# -- a push that reaches no server ---------------------------------------------------------------------------

PUSHES = """
from django_stomp_push import push, push_to_user
push("/topic/a", "one")
push("/topic/b", "two")
push_to_user(1, "/queue/x", "three")
print("pushed")
"""
WARNING = "reaches only this process"


def test_pushes_from_another_process_on_the_in_memory_layer_warn_once(project):
    result = project.python(PUSHES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pushed"
    assert result.stderr.count(WARNING) == 1
    assert "push()" in result.stderr and "channels-redis" in result.stderr and "layer_config" in result.stderr


@pytest.mark.redis
def test_pushes_over_redis_do_not_warn(project, redis_server):
    project.redis_url = redis_server.url
    result = project.python(PUSHES)
    assert result.returncode == 0, result.stderr
    assert WARNING not in result.stderr


@pytest.mark.django_db(transaction=True)
async def test_a_push_in_a_process_with_a_connection_does_not_warn(alice, login, caplog, monkeypatch):
    monkeypatch.setattr(import_module("django_stomp_push.push"), "_warned_local_only", None)
    client: StompTestClient = await connected(await sign_in(alice, login))  # starts this loop's hub
    with caplog.at_level("WARNING", logger="django_stomp_push"):
        await sync_to_async(push)("/topic/anything", "x")
    assert WARNING not in caplog.text
    await client.close()
