"""Settings for benchmarking django-stomp-push: the test project, opened to anonymous clients that publish.

``REDIS_URL`` set: channels-redis as the project recommends it (``django_stomp_push.redis.layer_config``, the
layer ``REDIS_LAYER``: core or pubsub);
unset: the in-memory layer. ``BENCH_REDIS_HOST_OPTIONS`` (JSON) adds host options, as for the textbook server.
"""

import json
import os

from testproject.settings import *  # noqa: F403

from django_stomp_push.redis import layer_config

DEBUG = False
ALLOWED_HOSTS = ["*"]
STOMP_PUSH = {"ALLOW_ANONYMOUS": True, "CLIENT_SEND_TO_TOPICS": True}
if os.environ.get("REDIS_URL"):
    _options = json.loads(os.environ.get("BENCH_REDIS_HOST_OPTIONS") or "{}")
    _layer = os.environ.get("REDIS_LAYER", "pubsub")
    CHANNEL_LAYERS = {"default": layer_config(os.environ["REDIS_URL"], layer=_layer, **_options)}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
