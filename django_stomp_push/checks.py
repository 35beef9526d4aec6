"""System checks: misconfigurations reported at start-up with an id and a hint, not at 3 a.m.

========================  ===================================================================================
id                        problem
========================  ===================================================================================
stomp_push.E001           ``STOMP_PUSH`` has an invalid value (one error per bad key)
stomp_push.E002           no channel layer under the configured alias
stomp_push.E003           ``SESSION_ENGINE`` cannot be imported
stomp_push.E004           ``AUTHORIZE`` does not import
stomp_push.E005           ``ASGI_APPLICATION`` serves no WebSocket (Django's ASGI handler, a router without one)
stomp_push.E006           the session engine's model is not installed (``django.contrib.sessions`` missing)
stomp_push.E007           a ``HANDLER_MODULES`` entry cannot be imported
stomp_push.E008           ``RELAY`` is set and the channel layer is not channels-redis's pub/sub layer
stomp_push.W001           in-memory channel layer with ``DEBUG = False`` (closes and pushes stay in one process)
stomp_push.W002           ``signed_cookies`` session engine: sessions cannot be ended server-side
stomp_push.W003           the ASGI application mounts the consumer without session middleware
stomp_push.W004           ``SESSION_COOKIE_AGE`` shorter than the heart-beat interval
stomp_push.W005           channels-redis with redis-py settings that lose messages (socket timeout / pool)
stomp_push.W006           ``ACTIVITY`` set for an engine that cannot be extended
stomp_push.W007           ``daphne`` is not first in ``INSTALLED_APPS`` (``runserver`` would not serve WebSockets)
stomp_push.W008           ``daphne`` is not in ``INSTALLED_APPS`` (with ``DEBUG``): ``runserver`` serves WSGI only
stomp_push.W009           ``ASGI_APPLICATION`` is not set
stomp_push.W010           the ASGI application mounts no ``StompConsumer`` this check can find
stomp_push.W011           ``TOPIC_PREFIX`` is deprecated: use ``BROKER_PREFIXES``
stomp_push.W012           ``net.core.somaxconn`` caps every listen backlog below a storm's (``check --deploy``)
stomp_push.W013           the pub/sub layer's ``CONFIG`` has core-layer options it ignores (capacity, expiry)
stomp_push.W014           channels-redis release not verified for the pub/sub publisher (pushes not pipelined)
========================  ===================================================================================

daphne, uvicorn and gunicorn run no system checks: :func:`startup_errors` is what
:func:`~django_stomp_push.routing.wrap` runs when the ASGI application is built, so that a server with an error
above refuses to start. The checks of the ASGI application itself (:mod:`.asgi_checks`) are left out there: that
application is the one being built.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.core import checks

TAG = "stomp_push"
PUBSUB_BACKEND = "channels_redis.pubsub.RedisPubSubChannelLayer"


@checks.register(TAG)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .asgi_checks import check_asgi

    return _settings_messages() + check_asgi()


def startup_errors() -> list[checks.CheckMessage]:
    """The errors a server must not start with: every check but the ASGI application's, at level ERROR and not
    in ``SILENCED_SYSTEM_CHECKS``. Before the app registry is ready, only the settings' validation."""
    from django.apps import apps

    messages = _settings_messages() if apps.ready else _settings_errors()[1]
    return [m for m in messages if m.is_serious() and not m.is_silenced()]


def _settings_errors() -> tuple[Any, list[checks.CheckMessage]]:
    """(the Config of the valid keys, one E001 per invalid key)."""
    from .conf import Config, validate

    values, errors = validate(getattr(settings, "STOMP_PUSH", None))
    hint = "See the settings reference in the docs."
    return Config(**values), [checks.Error(error, hint=hint, id="stomp_push.E001") for error in errors]


def _settings_messages() -> list[checks.CheckMessage]:
    """Every check but those of the ASGI application; the rest of the settings are checked with the valid keys."""
    config, messages = _settings_errors()
    messages += _check_deprecated()
    messages += _check_layer(config)
    messages += _check_sessions(config)
    messages += _check_imports(config)
    return messages


def _check_deprecated() -> list[checks.CheckMessage]:
    raw = getattr(settings, "STOMP_PUSH", None)
    if not isinstance(raw, dict):
        return []
    keys = {key.lower(): key for key in raw if isinstance(key, str)}
    if "topic_prefix" not in keys:
        return []
    return [
        checks.Warning(
            f"STOMP_PUSH[{keys['topic_prefix']!r}] is deprecated and will be removed in django-stomp-push 0.3.0.",
            hint=f"Write STOMP_PUSH['BROKER_PREFIXES'] = [{raw[keys['topic_prefix']]!r}] instead.",
            id="stomp_push.W011",
        )
    ]


def _check_imports(config: Any) -> list[checks.CheckMessage]:
    """E004 (the AUTHORIZE hook) and E007 (HANDLER_MODULES)."""
    messages: list[checks.CheckMessage] = []
    if config.authorize:
        from django.utils.module_loading import import_string

        try:
            import_string(config.authorize)
        except ImportError as exc:
            messages.append(
                checks.Error(
                    f"STOMP_PUSH['AUTHORIZE'] = {config.authorize!r} cannot be imported: {exc}",
                    hint="Give the dotted path of a function authorize(user, action, destination) -> bool.",
                    id="stomp_push.E004",
                )
            )
    from .conf import SettingsError

    for module in config.handler_modules:
        try:
            import_module(module)
        except SettingsError:  # @handler reads the settings: E001 already says what is wrong with them
            continue
        except Exception as exc:
            messages.append(
                checks.Error(
                    f"STOMP_PUSH['HANDLER_MODULES'] lists {module!r}, which cannot be imported: "
                    f"{type(exc).__name__}: {exc}",
                    hint="Give the dotted path of a module (such as 'myapp.stomp'), and check what it imports.",
                    id="stomp_push.E007",
                )
            )
    return messages


def _check_layer(config: Any) -> list[checks.CheckMessage]:
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not layers:
        layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    entry = layers.get(config.channel_layer)
    if entry is None:
        return [
            checks.Error(
                f"CHANNEL_LAYERS has no {config.channel_layer!r} layer for django-stomp-push.",
                hint="Add one (channels_redis in production) or set STOMP_PUSH['CHANNEL_LAYER'].",
                id="stomp_push.E002",
            )
        ]
    backend = entry.get("BACKEND", "")
    messages: list[checks.CheckMessage] = []
    if backend.endswith("InMemoryChannelLayer") and not settings.DEBUG:
        messages.append(
            checks.Warning(
                "The in-memory channel layer reaches only its own process: pushes from other processes "
                "(workers, cron, shell) and session closes from other servers never arrive.",
                hint="Use channels-redis in production: django_stomp_push.redis.layer_config(url, layer='pubsub').",
                id="stomp_push.W001",
            )
        )
    if config.relay is not None and backend != PUBSUB_BACKEND:
        messages.append(
            checks.Error(
                f"STOMP_PUSH['RELAY'] is set, and the {config.channel_layer!r} channel layer is {backend or 'unset'}: "
                "the relay shares subscriptions of channels-redis's pub/sub layer only.",
                hint="Build the layer with django_stomp_push.redis.layer_config(url) (the pub/sub layer), or remove "
                "RELAY.",
                id="stomp_push.E008",
            )
        )
    if backend == PUBSUB_BACKEND:
        messages += _check_pubsub(entry.get("CONFIG") or {})
    elif "channels_redis" in backend:
        messages += _check_redis_hosts(entry.get("CONFIG") or {})
    return messages


#: Options of channels-redis's core layer that its pub/sub layer accepts and ignores.
CORE_ONLY_OPTIONS = ("capacity", "channel_capacity", "expiry", "group_expiry")


def _check_pubsub(config: dict[str, Any]) -> list[checks.CheckMessage]:
    """The pub/sub layer has no capacity, no message expiry and no group expiry: say so when the CONFIG sets them
    (they belong to RedisChannelLayer), and whether pushes can be pipelined with the installed channels-redis."""
    from .redis import PUBSUB_VERIFIED as VERIFIED
    from .redis import unverified_pubsub_version as unverified_version

    messages: list[checks.CheckMessage] = []
    ignored = [name for name in CORE_ONLY_OPTIONS if name in config]
    if ignored:
        messages.append(
            checks.Warning(
                f"RedisPubSubChannelLayer ignores {', '.join(ignored)}: a pub/sub message is delivered to the "
                "processes subscribed at that moment or to nobody, never queued, and group members do not expire.",
                hint="Remove them, or use layer_config(url, layer='pubsub') (see 'Choosing a channel layer').",
                id="stomp_push.W013",
            )
        )
    installed = unverified_version()
    if installed is not None:
        messages.append(
            checks.Warning(
                f"channels-redis {installed} is not a release the pipelined pub/sub publisher was verified with "
                f"({', '.join(VERIFIED)}): if its group layout changed, each push costs a round trip of its own.",
                hint="Run the package's tests/test_pubsub_seam.py with this release, or pin channels-redis.",
                id="stomp_push.W014",
            )
        )
    return messages


def _check_redis_hosts(config: dict[str, Any]) -> list[checks.CheckMessage]:
    """redis-py's socket_timeout must exceed channels-redis's blocking read, and the pool must wait, not raise."""
    from .redis import broken_host_settings

    problems = broken_host_settings(config)
    return [
        checks.Warning(
            problem,
            hint="Use django_stomp_push.redis.layer_config(url) to build CHANNEL_LAYERS (see 'Deployment').",
            id="stomp_push.W005",
        )
        for problem in problems
    ]


def _check_sessions(config: Any) -> list[checks.CheckMessage]:
    from .sessions import engine_name, session_engine

    try:
        engine = session_engine()
    except Exception as exc:
        return [checks.Error(f"SESSION_ENGINE cannot be imported: {exc}", id="stomp_push.E003")]
    messages: list[checks.CheckMessage] = []
    problem = _session_model_problem(engine)
    if problem:
        messages.append(
            checks.Error(
                problem.rstrip(".") + ": every CONNECT would fail.",
                hint="Add 'django.contrib.sessions' (or the app of your session model) to INSTALLED_APPS.",
                id="stomp_push.E006",
            )
        )
    if not engine.ends_server_side:
        messages.append(
            checks.Warning(
                "With the signed_cookies session engine a session cannot be ended server-side: logout and "
                "expiry cannot close STOMP connections before the cookie's signature expires.",
                hint="Use the db, cached_db, cache or file session engine.",
                id="stomp_push.W002",
            )
        )
    receive_ms = config.heartbeat[1] * config.heartbeat_grace
    if config.heartbeat[0] and settings.SESSION_COOKIE_AGE * 1000 < max(config.heartbeat[0], receive_ms):
        messages.append(
            checks.Warning(
                f"SESSION_COOKIE_AGE ({settings.SESSION_COOKIE_AGE}s) is shorter than the STOMP heart-beat "
                f"interval ({config.heartbeat[0] / 1000:g}s): sessions expire between two heart-beats.",
                hint="Lengthen SESSION_COOKIE_AGE or shorten STOMP_PUSH['HEARTBEAT'].",
                id="stomp_push.W004",
            )
        )
    if config.activity != "none" and not engine.can_extend:
        messages.append(
            checks.Warning(
                f"STOMP_PUSH['ACTIVITY'] = {config.activity!r} has no effect with the {engine_name()} session engine, "
                "which cannot be extended server-side.",
                id="stomp_push.W006",
            )
        )
    return messages


def _session_model_problem(engine: Any) -> str | None:
    """Why the session engine's model cannot be used, if it cannot (its app is not in INSTALLED_APPS)."""
    from django.apps import apps

    try:
        model = engine.session_model
    except Exception as exc:  # a models module refuses to load outside INSTALLED_APPS
        return f"SESSION_ENGINE {settings.SESSION_ENGINE!r} needs a session model that cannot be loaded: {exc}"
    if model is None or apps.get_containing_app_config(model.__module__) is not None:
        return None
    app = model.__module__.rpartition(".")[0]
    return (
        f"SESSION_ENGINE {settings.SESSION_ENGINE!r} keeps sessions in the model {model._meta.label}, "
        f"but {app!r} is not in INSTALLED_APPS"
    )


@checks.register(TAG, deploy=True)
def check_listen_backlog(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check --deploy``: the kernel's cap on listen backlogs (``stomp_push.W012``, Linux)."""
    from .backlog import check_somaxconn

    return check_somaxconn(app_configs, **kwargs)
