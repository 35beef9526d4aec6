"""System checks: each misconfiguration is reported with its id, and a sound configuration reports nothing."""

from __future__ import annotations

import sys

import pytest
from channels.auth import AuthMiddleware
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.sessions import CookieMiddleware, SessionMiddlewareStack
from django.conf import settings as django_settings
from django.core import checks
from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_stomp_push.checks import check_settings
from django_stomp_push.consumer import StompConsumer
from django_stomp_push.redis import layer_config
from django_stomp_push.routing import stomp_application, websocket_urlpatterns, wrap

# ASGI applications for ASGI_APPLICATION = "tests.test_checks.<name>".
bare_router = ProtocolTypeRouter({"websocket": URLRouter(websocket_urlpatterns())})
bare_consumer = StompConsumer.as_asgi()
session_without_auth = ProtocolTypeRouter({"websocket": SessionMiddlewareStack(URLRouter(websocket_urlpatterns()))})
# AuthMiddleware needs a session, and resolves nothing without one: the consumer can bind no session either.
auth_without_session = ProtocolTypeRouter(
    {"websocket": CookieMiddleware(AuthMiddleware(URLRouter(websocket_urlpatterns())))}
)
wrapped_router = ProtocolTypeRouter({"websocket": wrap(URLRouter(websocket_urlpatterns()))})
http_only = get_asgi_application()
router_without_websocket = ProtocolTypeRouter({"http": http_only})
no_consumer = ProtocolTypeRouter({"http": http_only, "websocket": wrap(URLRouter([]))})


class Opaque:
    """ASGI middleware that keeps its application where no check can look."""

    def __init__(self, app):
        self._hidden = {"app": app}

    async def __call__(self, scope, receive, send):
        await self._hidden["app"](scope, receive, send)


hidden_consumer = ProtocolTypeRouter({"websocket": Opaque(wrap(URLRouter(websocket_urlpatterns())))})


def with_logging(app):
    async def wrapped(scope, receive, send):
        return await app(scope, receive, send)

    return wrapped


bare_behind_a_function = with_logging(bare_router)
wrapped_behind_a_function = with_logging(wrapped_router)

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


def test_e001_reports_each_invalid_key_as_its_own_error():
    found = [m for m in check(STOMP_PUSH={"HEARTBEAT": "fast", "MAX_FRAME_SIZE": 0, "CONNECT_TIMEOUT": 3})]
    assert [m.id for m in found] == ["stomp_push.E001", "stomp_push.E001"]
    assert "'HEARTBEAT'" in found[0].msg and "MAX_FRAME_SIZE" not in found[0].msg
    assert "'MAX_FRAME_SIZE'" in found[1].msg


@pytest.mark.parametrize(("value", "kind"), [(["HEARTBEAT"], "list"), ("HEARTBEAT", "str")])
def test_e001_names_the_type_of_a_stomp_push_that_is_not_a_dict(value, kind):
    found = check(STOMP_PUSH=value)
    assert [m.id for m in found] == ["stomp_push.E001"]
    assert found[0].msg == f"STOMP_PUSH must be a dict of settings, not {kind}"


def test_the_other_checks_go_on_with_the_valid_keys():
    found = messages(STOMP_PUSH={"HEARTBEAT": "fast", "AUTHORIZE": "no.such.module.authorize"})
    assert {"stomp_push.E001", "stomp_push.E004"} <= set(found)


# -- W001 ----------------------------------------------------------------------------------------------------


def test_w001_warns_about_the_in_memory_layer_without_debug():
    found = messages(DEBUG=False)
    assert "stomp_push.W001" in found
    assert "layer_config" in found["stomp_push.W001"].hint


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
    for layer in ("core", "pubsub"):
        entry = layer_config("redis://localhost:6379", layer=layer)
        assert "stomp_push.W005" not in messages(CHANNEL_LAYERS={"default": entry})


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


# -- E005, W009, W010: what serves the endpoint ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "what"), [("http_only", "Django's ASGI handler"), ("router_without_websocket", "router")]
)
def test_e005_reports_an_asgi_application_that_serves_no_websocket(app, what):
    found = messages(ASGI_APPLICATION="tests.test_checks." + app)
    assert found["stomp_push.E005"].level == checks.ERROR
    assert what in found["stomp_push.E005"].msg
    assert "stomp_application()" in found["stomp_push.E005"].hint
    assert "stomp_push.W010" not in found


@pytest.mark.parametrize("app", ["no_consumer", "hidden_consumer"])
def test_w010_warns_when_no_stomp_consumer_can_be_found(app):
    found = messages(ASGI_APPLICATION="tests.test_checks." + app)
    assert found["stomp_push.W010"].level == checks.WARNING  # a wrapper of the project's may hide it
    assert "SILENCED_SYSTEM_CHECKS" in found["stomp_push.W010"].hint
    assert "stomp_push.E005" not in found


def test_the_consumer_is_found_behind_a_function_wrapper():
    assert "stomp_push.W003" in messages(ASGI_APPLICATION="tests.test_checks.bare_behind_a_function")
    assert messages(ASGI_APPLICATION="tests.test_checks.wrapped_behind_a_function") == {}


@pytest.mark.parametrize("app", ["testproject.asgi.application", "tests.test_checks.wrapped_router"])
def test_w010_stays_quiet_for_a_mounted_consumer(app):
    assert "stomp_push.W010" not in messages(ASGI_APPLICATION=app)


def test_w009_warns_when_asgi_application_is_not_set():
    found = messages(ASGI_APPLICATION=None)
    assert "stomp_push.W009" in found
    assert "stomp_application()" in found["stomp_push.W009"].hint


# -- W007, W008: runserver ---------------------------------------------------------------------------------------


def without(*names: str) -> list[str]:
    return [app for app in django_settings.INSTALLED_APPS if app not in names]


def test_w008_warns_when_runserver_would_be_djangos_wsgi_server():
    found = messages(INSTALLED_APPS=without("daphne"))
    assert "'daphne' first" in found["stomp_push.W008"].hint


def test_w008_stays_quiet_without_debug_or_asgi_application():
    assert "stomp_push.W008" not in messages(INSTALLED_APPS=without("daphne"), DEBUG=False)
    assert "stomp_push.W008" not in messages(INSTALLED_APPS=without("daphne"), ASGI_APPLICATION=None)


def test_w007_warns_when_daphne_is_not_first():
    found = messages(INSTALLED_APPS=[*without("daphne"), "daphne"])
    assert set(found) & {"stomp_push.W007", "stomp_push.W008"} == {"stomp_push.W007"}


# -- E006: the session model -------------------------------------------------------------------------------------


def test_e006_reports_a_session_engine_whose_model_is_not_installed():
    found = messages(INSTALLED_APPS=without("django.contrib.sessions", "django.contrib.admin"))
    assert "'django.contrib.sessions' is not in INSTALLED_APPS" in found["stomp_push.E006"].msg
    assert found["stomp_push.E006"].level == checks.ERROR


@pytest.mark.parametrize("engine", ["cache", "file", "signed_cookies"])
def test_e006_stays_quiet_for_engines_without_a_model(engine):
    found = messages(
        INSTALLED_APPS=without("django.contrib.sessions", "django.contrib.admin"),
        SESSION_ENGINE="django.contrib.sessions.backends." + engine,
    )
    assert "stomp_push.E006" not in found


# -- E007: handler modules -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "error"),
    [
        ("tests.no_such_handlers", "No module named 'tests.no_such_handlers'"),
        ("tests.broken_handlers", "No module named 'django_stomp_push_tests_missing_dependency'"),
    ],
)
def test_e007_names_a_handler_module_that_cannot_be_imported_and_why(module, error):
    found = [m for m in check(STOMP_PUSH={"HANDLER_MODULES": ["demo.stomp", module]}) if m.id == "stomp_push.E007"]
    assert len(found) == 1
    assert repr(module) in found[0].msg and error in found[0].msg


# -- E008: a relay needs the pub/sub layer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layers",
    [
        {"default": layer_config("redis://127.0.0.1:6379/0", layer="core")},
        {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    ],
)
def test_e008_a_relay_with_a_layer_it_cannot_serve_keeps_the_server_from_starting(layers):
    relay = {"RELAY": "/run/stomp-push/relay.sock"}
    with override_settings(CHANNEL_LAYERS=layers, STOMP_PUSH=relay), pytest.raises(ImproperlyConfigured) as raised:
        wrap(URLRouter(websocket_urlpatterns()))
    assert "stomp_push.E008" in str(raised.value)


def test_e008_is_silent_for_a_relay_on_the_pubsub_layer_and_for_no_relay():
    pubsub = {"default": layer_config("redis://127.0.0.1:6379/0")}
    assert "stomp_push.E008" not in messages(CHANNEL_LAYERS=pubsub, STOMP_PUSH={"RELAY": "/run/relay.sock"})
    core = {"default": layer_config("redis://127.0.0.1:6379/0", layer="core")}
    assert "stomp_push.E008" not in messages(CHANNEL_LAYERS=core)


@pytest.mark.parametrize("value", ["relay.sock", "", 5, "/" + "x" * 120])
def test_relay_must_be_an_absolute_socket_path(value):
    found = messages(STOMP_PUSH={"RELAY": value})
    assert "RELAY" in found["stomp_push.E001"].msg


# -- W011: the deprecated TOPIC_PREFIX -----------------------------------------------------------------------------


def test_w011_asks_for_broker_prefixes_instead_of_topic_prefix():
    found = messages(STOMP_PUSH={"topic_prefix": "/exchange/"})
    assert set(found) == {"stomp_push.W011"}
    assert "BROKER_PREFIXES'] = ['/exchange/']" in found["stomp_push.W011"].hint


# -- fail fast: building the ASGI application --------------------------------------------------------------------

BROKEN = {"HEARTBEAT": "fast", "CHANNEL_LAYER": "nope", "HANDLER_MODULES": ["tests.no_such_handlers"]}


@pytest.mark.parametrize("build", [lambda: wrap(URLRouter(websocket_urlpatterns())), stomp_application])
def test_building_the_application_raises_every_error_with_its_id(build):
    with override_settings(STOMP_PUSH=BROKEN), pytest.raises(ImproperlyConfigured) as raised:
        build()
    text = str(raised.value)
    for id_ in ("stomp_push.E001", "stomp_push.E002", "stomp_push.E007"):
        assert id_ in text
    assert "HEARTBEAT" in text and "'nope'" in text and "tests.no_such_handlers" in text
    assert "manage.py check" in text


def test_warnings_and_silenced_errors_do_not_stop_the_application():
    settings = {"STOMP_PUSH": {"CHANNEL_LAYER": "nope"}, "SILENCED_SYSTEM_CHECKS": ["stomp_push.E002"]}
    with override_settings(SESSION_COOKIE_AGE=1, **settings):
        wrap(URLRouter(websocket_urlpatterns()))
    with override_settings(STOMP_PUSH={"CHANNEL_LAYER": "nope"}), pytest.raises(ImproperlyConfigured):
        wrap(URLRouter(websocket_urlpatterns()))


def test_the_check_imports_an_asgi_module_with_errors_and_reports_them_as_messages(monkeypatch):
    monkeypatch.delitem(sys.modules, "tests.asgi_for_checks", raising=False)
    found = check(ASGI_APPLICATION="tests.asgi_for_checks.application", STOMP_PUSH=BROKEN)
    ids = [m.id for m in found]
    assert {"stomp_push.E001", "stomp_push.E002", "stomp_push.E007"} <= set(ids)
    assert len(ids) == len(set(ids))  # each once: the import raised nothing that was reported again
    assert "tests.asgi_for_checks" in sys.modules  # imported, so its application was looked at
    assert not {"stomp_push.W003", "stomp_push.W010", "stomp_push.E005"} & set(ids)


def test_w013_names_the_core_layer_options_the_pubsub_layer_ignores():
    entry = layer_config("redis://localhost:6379", layer="pubsub")
    assert "stomp_push.W013" not in messages(CHANNEL_LAYERS={"default": entry})
    entry["CONFIG"].update(capacity=100, group_expiry=10)
    found = [m for m in check(CHANNEL_LAYERS={"default": entry}) if m.id == "stomp_push.W013"]
    assert len(found) == 1 and "capacity, group_expiry" in found[0].msg


def test_w005_does_not_apply_to_the_pubsub_layer_which_has_no_blocking_read():
    hosts = [{"address": "redis://localhost:6379", "socket_timeout": 2}]
    layers = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": hosts}}}
    assert "stomp_push.W005" not in messages(CHANNEL_LAYERS=layers)


def test_w014_warns_when_the_installed_channels_redis_is_not_verified(monkeypatch):
    from django_stomp_push import redis

    layers = {"default": layer_config("redis://localhost:6379", layer="pubsub")}
    assert "stomp_push.W014" not in messages(CHANNEL_LAYERS=layers)
    monkeypatch.setattr(redis, "PUBSUB_VERIFIED", ("0.1",))
    found = [m for m in check(CHANNEL_LAYERS=layers) if m.id == "stomp_push.W014"]
    assert len(found) == 1 and "not a release" in found[0].msg


def test_w012_is_a_deploy_check_of_the_kernels_backlog_cap(monkeypatch):
    from django.core import checks as django_checks

    from django_stomp_push import backlog

    monkeypatch.setattr(backlog, "somaxconn", lambda: 128)
    deploy = [m.id for m in django_checks.run_checks(tags=["stomp_push"], include_deployment_checks=True)]
    assert "stomp_push.W012" in deploy
    assert "stomp_push.W012" not in [m.id for m in django_checks.run_checks(tags=["stomp_push"])]
