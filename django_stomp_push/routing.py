"""Ready-made routing: the STOMP endpoint wrapped in Origin validation, cookies and the session.

``asgi.py`` becomes::

    from django_stomp_push.routing import stomp_application
    application = stomp_application()

which serves Django's HTTP views and the STOMP endpoint at ``/ws/stomp/``. To mount it in your own router, use
:func:`websocket_urlpatterns` or :func:`wrap`.

Building the application (:func:`stomp_application` or :func:`wrap`) runs the package's system checks of level
ERROR, which daphne, uvicorn and gunicorn never run, and raises ``ImproperlyConfigured`` listing each with its id:
a misconfigured server refuses to start instead of answering every handshake with HTTP 500.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.urls import path, re_path

DEFAULT_PATH = "ws/stomp/"

#: The settings passed the start-up checks (again after a setting changes, as in tests).
_checked = False


def _refuse_to_start_misconfigured() -> None:
    """Raise ImproperlyConfigured listing every error of the package's system checks, if there is one.

    Run once per process (and again after a setting changes); not while the system check itself imports the
    ASGI application, which reports the same errors as check messages.
    """
    global _checked
    from django.apps import apps

    from .asgi_checks import importing_for_check

    if _checked or importing_for_check():
        return
    from .checks import startup_errors

    errors = startup_errors()
    if errors:
        lines = [f"{m.id}: {m.msg}" + (f"\n\tHINT: {m.hint}" if m.hint else "") for m in errors]
        raise ImproperlyConfigured(
            f"django-stomp-push cannot start: {len(errors)} system check error(s), listed by "
            "'manage.py check' too (daphne, uvicorn and gunicorn run no system checks):\n" + "\n".join(lines)
        )
    _checked = apps.ready  # before the app registry is ready, only the settings could be checked


def _recheck(**kwargs: Any) -> None:
    global _checked
    _checked = False


setting_changed.connect(_recheck, dispatch_uid="django_stomp_push.routing")


def wrap(inner: Any) -> Any:
    """``inner`` behind ``AllowedHostsOriginValidator`` and ``SessionMiddlewareStack`` (cookies and the session
    object, which reads nothing yet).

    No ``AuthMiddleware``: it would look the session and the user up during the WebSocket handshake, one
    connection at a time on asgiref's single sync thread. The connection reads its session, user and auth hash at
    CONNECT instead, batched with the other connections' reads (a reconnect storm costs the database a few large
    queries, not thousands of small ones).

    Raises ImproperlyConfigured when the package's system checks find an error (see the module's docstring).
    """
    from channels.security.websocket import AllowedHostsOriginValidator
    from channels.sessions import SessionMiddlewareStack

    _refuse_to_start_misconfigured()
    return AllowedHostsOriginValidator(SessionMiddlewareStack(inner))


def websocket_urlpatterns(route: str = DEFAULT_PATH, consumer: Any = None) -> list[Any]:
    """URL patterns for ``URLRouter``: the STOMP consumer at ``route`` (a ``path()`` route, or a regex if it
    starts with ``^``)."""
    from .consumer import StompConsumer

    app = (consumer or StompConsumer).as_asgi()
    return [re_path(route, app) if route.startswith("^") else path(route, app)]


def stomp_application(route: str = DEFAULT_PATH, http: Any = None, consumer: Any = None) -> Any:
    """A complete ASGI application: Django for HTTP, the STOMP endpoint (wrapped by :func:`wrap`) at ``route``."""
    from channels.routing import ProtocolTypeRouter, URLRouter

    if http is None:
        from django.core.asgi import get_asgi_application

        http = get_asgi_application()
    return ProtocolTypeRouter({"http": http, "websocket": wrap(URLRouter(websocket_urlpatterns(route, consumer)))})
