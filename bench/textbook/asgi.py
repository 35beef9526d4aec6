"""ASGI application of the textbook baseline: the Channels tutorial's routing (Origin check, auth, URL router)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.textbook.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from .consumer import TextbookStompConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/stomp/", TextbookStompConsumer.as_asgi())]))
        ),
    }
)
