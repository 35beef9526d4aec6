"""System checks: each misconfiguration is reported with its id, and a sound configuration reports nothing."""

from __future__ import annotations

import pytest
from channels.auth import AuthMiddleware
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.sessions import CookieMiddleware, SessionMiddlewareStack
from django.core import checks
from django.test import override_settings

from django_stomp_push.checks import check_settings
from django_stomp_push.consumer import StompConsumer
from django_stomp_push.redis import layer_config
from django_stomp_push.routing import websocket_urlpatterns, wrap

# ASGI applications for ASGI_APPLICATION = "tests.test_checks.<name>".
bare_router = ProtocolTypeRouter({"websocket": URLRouter(websocket_urlpatterns())})
bare_consumer = StompConsumer.as_asgi()
session_without_auth = ProtocolTypeRouter({"websocket": SessionMiddlewareStack(URLRouter(websocket_urlpatterns()))})
# AuthMiddleware needs a session, and resolves nothing without one: the consumer can bind no session either.
auth_without_session = ProtocolTypeRouter(
    {"websocket": CookieMiddleware(AuthMiddleware(URLRouter(websocket_urlpatterns())))}
)
wrapped_router = ProtocolTypeRouter({"websocket": wrap(URLRouter(websocket_urlpatterns()))})

REDIS_WITH_DEFAULTS = {
    "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://localhost:6379"]}}
}


def check(**settings) -> list[checks.CheckMessage]:
    """The stomp_push check messages under ``settings`` (DEBUG on unless given, so W001 stays out)."""
    settings.setdefault("DEBUG", True)
    with override_settings(**settings):
        return check_settings()


def messages(**settings) -> dict[str, checks.CheckMessage]:
    """:func:`check` by id (the last message of each id)."""
    return {message.id: message for message in check(**settings)}


def test_the_test_projects_configuration_reports_nothing():
    assert messages() == {}


def test_the_checks_are_registered_under_the_stomp_push_tag():
    with override_settings(STOMP_PUSH={"HEARTBEAT": "x"}):
        assert "stomp_push.E001" in {m.id for m in checks.run_checks(tags=["stomp_push"])}


# -- E001 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "key"),
    [({"HEARTBEAT": "fast"}, "HEARTBEAT"), ({"MAX_FRAME_SIZE": 0}, "MAX_FRAME_SIZE"), ({"NOPE": 1}, "NOPE")],
)
def test_e001_reports_an_invalid_setting_by_its_key(settings, key):
    found = messages(STOMP_PUSH=settings)
    assert set(found) == {"stomp_push.E001"}
    assert key in found["stomp_push.E001"].msg
    assert found["stomp_push.E001"].level == checks.ERROR


# -- W001 ----------------------------------------------------------------------------------------------------


def test_w001_warns_about_the_in_memory_layer_without_debug():
    found = messages(DEBUG=False)
    assert "stomp_push.W001" in found
    assert "channels_redis" in found["stomp_push.W001"].hint


def test_w001_stays_quiet_with_debug():
    assert "stomp_push.W001" not in messages(DEBUG=True)


def test_w001_stays_quiet_with_channels_redis():
    assert "stomp_push.W001" not in messages(DEBUG=False, CHANNEL_LAYERS={"default": layer_config("redis://x:6379")})


# -- W002 ----------------------------------------------------------------------------------------------------


def test_w002_warns_about_signed_cookie_sessions():
    found = messages(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies")
    assert "stomp_push.W002" in found


@pytest.mark.parametrize("engine", ["db", "cached_db", "cache", "file"])
def test_w002_stays_quiet_for_server_side_session_engines(engine):
    assert "stomp_push.W002" not in messages(SESSION_ENGINE="django.contrib.sessions.backends." + engine)


# -- W003 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("app", ["bare_router", "bare_consumer", "auth_without_session"])
def test_w003_warns_about_a_consumer_mounted_without_session_middleware(app):
    found = messages(ASGI_APPLICATION="tests.test_checks." + app)
    assert "stomp_push.W003" in found


@pytest.mark.parametrize(
    "app",
    ["tests.test_checks.wrapped_router", "tests.test_checks.session_without_auth", "testproject.asgi.application"],
)
def test_w003_stays_quiet_for_a_wrapped_consumer(app):
    assert "stomp_push.W003" not in messages(ASGI_APPLICATION=app)


def test_w003_stays_quiet_when_the_asgi_application_cannot_be_imported():
    assert "stomp_push.W003" not in messages(ASGI_APPLICATION="no.such.module.application")


# -- W004 ----------------------------------------------------------------------------------------------------


def test_w004_warns_about_a_session_shorter_than_the_heart_beat_interval():
    found = messages(SESSION_COOKIE_AGE=5, STOMP_PUSH={"HEARTBEAT": (10_000, 10_000)})
    assert "stomp_push.W004" in found
    assert "SESSION_COOKIE_AGE" in found["stomp_push.W004"].msg


def test_w004_stays_quiet_for_a_session_longer_than_the_heart_beats():
    assert "stomp_push.W004" not in messages(SESSION_COOKIE_AGE=60, STOMP_PUSH={"HEARTBEAT": (10_000, 10_000)})


# -- W005 ----------------------------------------------------------------------------------------------------


def test_w005_warns_about_channels_redis_with_redis_pys_default_socket_timeout():
    found = [m for m in check(CHANNEL_LAYERS=REDIS_WITH_DEFAULTS) if m.id == "stomp_push.W005"]
    assert any("socket_timeout" in m.msg for m in found)
    assert any("max_connections" in m.msg for m in found)
    assert all("layer_config" in m.hint for m in found)


def test_w005_warns_about_a_socket_timeout_no_longer_than_the_blocking_read():
    host = {"address": "redis://localhost:6379", "socket_timeout": 5, "max_connections": 500}
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [host]}}}
    found = [m for m in check(CHANNEL_LAYERS=layers) if m.id == "stomp_push.W005"]
    assert len(found) == 1 and "socket_timeout 5s" in found[0].msg


def test_w005_stays_quiet_for_layer_config():
    assert "stomp_push.W005" not in messages(CHANNEL_LAYERS={"default": layer_config("redis://localhost:6379")})


# -- the others ----------------------------------------------------------------------------------------------


def test_e002_reports_a_missing_channel_layer_alias():
    assert "stomp_push.E002" in messages(STOMP_PUSH={"CHANNEL_LAYER": "pushes"})


def test_e004_reports_an_authorize_hook_that_does_not_import():
    found = messages(STOMP_PUSH={"AUTHORIZE": "no.such.module.authorize"})
    assert "stomp_push.E004" in found


def test_w006_warns_about_an_activity_policy_the_session_engine_cannot_honour():
    found = messages(
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies", STOMP_PUSH={"ACTIVITY": "frames"}
    )
    assert "stomp_push.W006" in found
