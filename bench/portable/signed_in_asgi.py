"""The ASGI application of the signed-in benchmarks: django-stomp-push's ready-made routing (Django's views and
the STOMP endpoint behind the Origin check, session and auth middleware), under :mod:`signed_in_settings`.

Top-level, as that module, so that a ``--baseline`` checkout runs it too.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "signed_in_settings"

from django_stomp_push.routing import stomp_application

application = stomp_application()
