"""System checks of what serves the STOMP endpoint: the ``ASGI_APPLICATION`` and ``runserver``.

What the check knows for certain is an Error; what it infers is a Warning, which a project silences in
``SILENCED_SYSTEM_CHECKS`` when it knows better:

- E005: the application is Django's own ASGI handler, or a ``ProtocolTypeRouter`` with no ``"websocket"`` entry:
  no WebSocket can connect (certain).
- W003: a ``StompConsumer`` is mounted without ``SessionMiddleware`` around it.
- W010: no ``StompConsumer`` was found in the application; a wrapper this check cannot look into may hide it.
- W009: ``ASGI_APPLICATION`` is not set: ``runserver`` cannot serve the endpoint and the application cannot be
  checked (daphne and uvicorn take the application's path on their command line instead).
- W007, W008: ``runserver`` would be Django's WSGI server, which has no WebSockets.

Checking the application imports it, and building it runs the package's start-up checks
(:func:`~django_stomp_push.routing.wrap`): while this module imports it, :func:`importing_for_check` tells the
application not to raise them (the check reports the same errors as check messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core import checks

_importing: ContextVar[bool] = ContextVar("django_stomp_push_importing_asgi", default=False)

#: Apps whose ``runserver`` is Django's WSGI server.
_WSGI_RUNSERVERS = ("django.core", "django.contrib.staticfiles")


def importing_for_check() -> bool:
    """True while the system check imports ``ASGI_APPLICATION``."""
    return _importing.get()


@contextmanager
def _importing_application() -> Iterator[None]:
    token = _importing.set(True)
    try:
        yield
    finally:
        _importing.reset(token)


def check_asgi() -> list[checks.CheckMessage]:
    """W003, W007 to W010 and E005."""
    messages = _check_runserver()
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        messages.append(
            checks.Warning(
                "ASGI_APPLICATION is not set: 'runserver' cannot serve the STOMP endpoint, and this check cannot "
                "look at the application that serves it.",
                hint="Set ASGI_APPLICATION = '<project>.asgi.application', where asgi.py has "
                "'application = stomp_application()'.",
                id="stomp_push.W009",
            )
        )
        return messages
    return messages + _check_application(str(path))


def _check_runserver() -> list[checks.CheckMessage]:
    installed = list(settings.INSTALLED_APPS)
    if "daphne" in installed:
        if installed[0] == "daphne":
            return []
        return [
            checks.Warning(
                "'daphne' is in INSTALLED_APPS but not first; 'runserver' may be Django's, which has no WebSockets.",
                hint="Put 'daphne' first in INSTALLED_APPS.",
                id="stomp_push.W007",
            )
        ]
    from django.core.management import get_commands

    wsgi_runserver = get_commands().get("runserver") in _WSGI_RUNSERVERS
    if settings.DEBUG and getattr(settings, "ASGI_APPLICATION", None) and wsgi_runserver:
        return [
            checks.Warning(
                "'daphne' is not in INSTALLED_APPS: 'runserver' is Django's WSGI server, which serves no "
                "WebSockets: it answers every STOMP connection as a plain HTTP request.",
                hint="Put 'daphne' first in INSTALLED_APPS.",
                id="stomp_push.W008",
            )
        ]
    return []


def _check_application(path: str) -> list[checks.CheckMessage]:
    from django.utils.module_loading import import_string

    try:
        with _importing_application():
            app = import_string(path)
    except Exception:  # the ASGI module may need a running server; nothing to say then
        return []
    from channels.routing import ProtocolTypeRouter
    from django.core.handlers.asgi import ASGIHandler

    from .consumer import StompConsumer

    if isinstance(app, ASGIHandler) or (
        isinstance(app, ProtocolTypeRouter) and "websocket" not in app.application_mapping
    ):
        what = "Django's ASGI handler, which serves HTTP only" if isinstance(app, ASGIHandler) else "a router"
        return [
            checks.Error(
                f"ASGI_APPLICATION = {path!r} is {what} with no 'websocket' entry: no STOMP client can connect.",
                hint="In asgi.py: application = stomp_application() (django_stomp_push.routing), or add "
                "'websocket': wrap(URLRouter(websocket_urlpatterns())) to the ProtocolTypeRouter.",
                id="stomp_push.E005",
            )
        ]
    chains = _consumer_chains(app, (), set())
    if not chains:
        return [
            checks.Warning(
                f"ASGI_APPLICATION = {path!r} mounts no StompConsumer that this check can find: STOMP clients "
                "may have no endpoint to connect to.",
                hint="Use stomp_application() or websocket_urlpatterns() (django_stomp_push.routing). If a wrapper "
                "of your own hides the consumer from this check, add 'stomp_push.W010' to SILENCED_SYSTEM_CHECKS.",
                id="stomp_push.W010",
            )
        ]
    if all(_has_session(chain) for chain in chains):
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


def _consumer_chains(app: Any, chain: tuple[Any, ...], seen: set[int], depth: int = 0) -> list[tuple[Any, ...]]:
    """Every path of wrappers from ``app`` down to a StompConsumer application: through Channels' routers and
    middleware (``inner``, ``application``, routes), ASGI middleware's ``app``, and the variables a function
    wrapper closes over."""
    from .consumer import StompConsumer

    if depth > 20 or app is None:
        return []
    consumer_class = getattr(app, "consumer_class", None)
    if isinstance(consumer_class, type) and issubclass(consumer_class, StompConsumer):
        return [chain]
    if id(app) in seen:
        return []
    seen.add(id(app))
    children: list[Any] = [getattr(app, attr, None) for attr in ("inner", "application", "app", "__wrapped__")]
    mapping = getattr(app, "application_mapping", None)
    if isinstance(mapping, dict):
        children += list(mapping.values())
    for route in getattr(app, "routes", None) or []:
        children.append(getattr(route, "callback", None))
    for cell in getattr(app, "__closure__", None) or ():
        try:
            children.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    found: list[tuple[Any, ...]] = []
    for child in children:
        if callable(child):
            found += _consumer_chains(child, (*chain, app), seen, depth + 1)
    return found


def _has_session(chain: tuple[Any, ...]) -> bool:
    from channels.sessions import SessionMiddleware

    return any(isinstance(m, SessionMiddleware) for m in chain)
