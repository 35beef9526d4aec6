"""ASGI application for benchmarking django-stomp-push: the test project's, with bench.settings_ours."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_ours"

from testproject.asgi import application

__all__ = ["application"]
