"""Django settings of the textbook baseline.

``REDIS_URL`` unset: the in-memory layer. Set: channels-redis configured as its README shows (``hosts: [url]``),
i.e. what a textbook user deploys. ``BENCH_REDIS_HOST_OPTIONS`` (JSON) adds options to the host entry, for
experiments such as ``{"socket_timeout": null, "max_connections": 1000}``.
"""

import json
import os

SECRET_KEY = "bench-textbook-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "bench.textbook.urls"
ASGI_APPLICATION = "bench.textbook.asgi.application"
USE_TZ = True

if os.environ.get("REDIS_URL"):
    _options = json.loads(os.environ.get("BENCH_REDIS_HOST_OPTIONS") or "{}")
    _host = {"address": os.environ["REDIS_URL"], **_options} if _options else os.environ["REDIS_URL"]
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [_host]}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
