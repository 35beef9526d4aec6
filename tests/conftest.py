from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def make_user(transactional_db):
    def make(username: str = "alice"):
        return get_user_model().objects.create_user(username=username, password="pw-" + username)

    return make


@pytest.fixture
def login(transactional_db):
    """Sign a user in over HTTP and return the session key of the new session."""

    def sign_in(user) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    return sign_in


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


REQUIRED_MARKERS = ("redis", "interop", "browser", "postgres")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With STOMP_PUSH_REQUIRE_ALL=1 (set by .ci/run) a skipped Redis, interop, browser or PostgreSQL test fails."""
    outcome = yield
    report = outcome.get_result()
    if not (os.environ.get("STOMP_PUSH_REQUIRE_ALL") and report.skipped):
        return
    if any(item.get_closest_marker(name) for name in REQUIRED_MARKERS):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"mandatory test was skipped (STOMP_PUSH_REQUIRE_ALL=1): {reason}"


from tests.servers import daphne_factory, project_factory, redis_server  # noqa: E402, F401


@pytest.fixture(params=["core", "pubsub", "relay"])
def redis_layer(request) -> str:
    """A test that asks for it runs on both channels-redis layers (``layer_config(layer=...)``, the test project's
    ``REDIS_LAYER``) and on the pub/sub layer behind a relay (``"relay"``: see ``tests.servers.migrated_project``)."""
    return request.param


@pytest.fixture(autouse=True)
def _fresh_file_session_storage():
    """Django's file session engine caches SESSION_FILE_PATH on its class: forget it around each test."""
    from django.contrib.sessions.backends.file import SessionStore

    def forget() -> None:
        if "_storage_path" in vars(SessionStore):
            del SessionStore._storage_path

    forget()
    yield
    forget()
