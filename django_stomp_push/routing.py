"""Ready-made routing: the STOMP endpoint wrapped in Origin validation, cookies and the session.

``asgi.py`` becomes::

    from django_stomp_push.routing import stomp_application
    application = stomp_application()

which serves Django's HTTP views and the STOMP endpoint at ``/ws/stomp/``. To mount it in your own router, use
:func:`websocket_urlpatterns` or :func:`wrap`.
"""

from __future__ import annotations

from typing import Any

from django.urls import path, re_path

DEFAULT_PATH = "ws/stomp/"


def wrap(inner: Any) -> Any:
    """``inner`` behind ``AllowedHostsOriginValidator`` and ``SessionMiddlewareStack`` (cookies and the session
    object, which reads nothing yet).

    No ``AuthMiddleware``: it would look the session and the user up during the WebSocket handshake, one
    connection at a time on asgiref's single sync thread. The connection reads its session, user and auth hash at
    CONNECT instead, batched with the other connections' reads (a reconnect storm costs the database a few large
    queries, not thousands of small ones).
    """
    from channels.security.websocket import AllowedHostsOriginValidator
    from channels.sessions import SessionMiddlewareStack

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
