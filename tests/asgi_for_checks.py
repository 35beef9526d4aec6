"""An ``asgi.py`` that builds the application when imported, as a project's does: the system check imports it
(ASGI_APPLICATION) without the start-up checks of ``stomp_application()`` raising."""

from django_stomp_push.routing import stomp_application

application = stomp_application()
