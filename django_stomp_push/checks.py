"""System checks: misconfigurations reported at start-up with an id and a hint, not at 3 a.m.

========================  ===================================================================================
id                        problem
========================  ===================================================================================
stomp_push.E001           ``STOMP_PUSH`` has an invalid value
stomp_push.E002           no channel layer under the configured alias
stomp_push.E003           ``SESSION_ENGINE`` cannot be imported
stomp_push.E004           ``AUTHORIZE`` does not import
stomp_push.W001           in-memory channel layer with ``DEBUG = False`` (closes and pushes stay in one process)
stomp_push.W002           ``signed_cookies`` session engine: sessions cannot be ended server-side
stomp_push.W003           the ASGI application mounts the consumer without session middleware
stomp_push.W004           ``SESSION_COOKIE_AGE`` shorter than the heart-beat interval
stomp_push.W005           channels-redis with redis-py settings that lose messages (socket timeout / pool)
stomp_push.W006           ``ACTIVITY`` set for an engine that cannot be extended
stomp_push.W007           ``daphne`` is not first in ``INSTALLED_APPS`` (``runserver`` would not serve WebSockets)
========================  ===================================================================================
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

TAG = "stomp_push"


@checks.register(TAG)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .conf import build_config

    try:
        config = build_config(getattr(settings, "STOMP_PUSH", None))
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), hint="See the settings reference in the docs.", id="stomp_push.E001")]
    messages: list[checks.CheckMessage] = []
    messages += _check_layer(config)
    messages += _check_sessions(config)
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
    messages += _check_asgi_application()
    apps = list(settings.INSTALLED_APPS)
    if "daphne" in apps and apps[0] != "daphne":
        messages.append(
            checks.Warning(
                "'daphne' is in INSTALLED_APPS but not first; 'runserver' may be Django's, which has no WebSockets.",
                hint="Put 'daphne' first in INSTALLED_APPS.",
                id="stomp_push.W007",
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
                hint="Use channels_redis.core.RedisChannelLayer in production.",
                id="stomp_push.W001",
            )
        )
    if "channels_redis" in backend:
        messages += _check_redis_hosts(entry.get("CONFIG") or {})
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


def _check_asgi_application() -> list[checks.CheckMessage]:
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return []
    from django.utils.module_loading import import_string

    try:
        app = import_string(path)
    except Exception:  # the ASGI module may need a running server; nothing to say then
        return []
    from .consumer import StompConsumer

    bare = [chain for chain in _consumer_chains(app, ()) if not _has_session(chain)]
    if not bare:
        return []
    return [
        checks.Warning(
            "The STOMP consumer is mounted without SessionMiddleware around it: connections cannot be bound to a "
            "Django session and every CONNECT is refused (or anonymous).",
            hint="Use django_stomp_push.routing.stomp_application() or wrap() around your URLRouter.",
            id="stomp_push.W003",
            obj=StompConsumer,
        )
    ]


def _consumer_chains(app: Any, chain: tuple[Any, ...], depth: int = 0) -> list[tuple[Any, ...]]:
    """Every path of wrappers from ``app`` down to a StompConsumer application."""
    from .consumer import StompConsumer

    if depth > 20 or app is None:
        return []
    consumer_class = getattr(app, "consumer_class", None)
    if isinstance(consumer_class, type) and issubclass(consumer_class, StompConsumer):
        return [chain]
    children: list[Any] = []
    for attr in ("inner", "application"):
        child = getattr(app, attr, None)
        if child is not None:
            children.append(child)
    mapping = getattr(app, "application_mapping", None)
    if isinstance(mapping, dict):
        children += list(mapping.values())
    for route in getattr(app, "routes", None) or []:
        children.append(getattr(route, "callback", None))
    found: list[tuple[Any, ...]] = []
    for child in children:
        found += _consumer_chains(child, (*chain, app), depth + 1)
    return found


def _has_session(chain: tuple[Any, ...]) -> bool:
    from channels.sessions import SessionMiddleware

    return any(isinstance(m, SessionMiddleware) for m in chain)
