"""Settings of the ``scale`` benchmark's processes (the hub stand-ins and the pusher): the benchmark settings of
django-stomp-push (:mod:`bench.settings_ours`) on the channels-redis layer named by ``BENCH_SCALE_LAYER`` (``core``,
``pubsub``, or ``relay``: pub/sub behind the relay at ``BENCH_RELAY_SOCKET``) at ``REDIS_URL``.
``BENCH_REDIS_HOST_OPTIONS`` (JSON) adds host options, as for the other benchmarks."""

import json
import os
from typing import Any

from bench.settings_ours import *  # noqa: F403
from django_stomp_push.redis import layer_config


def scale_layer(url: str, layer: str) -> dict[str, Any]:
    """The ``CHANNEL_LAYERS`` entry of ``layer`` ("core" or "pubsub"): the one the project recommends for it."""
    options = json.loads(os.environ.get("BENCH_REDIS_HOST_OPTIONS") or "{}")
    return layer_config(url, layer=layer, **options)


_LAYER = os.environ.get("BENCH_SCALE_LAYER", "core")
# "relay": the pub/sub layer, each process's hub behind the relay at BENCH_RELAY_SOCKET (its "machine's").
CHANNEL_LAYERS = {"default": scale_layer(os.environ["REDIS_URL"], "pubsub" if _LAYER == "relay" else _LAYER)}
if _LAYER == "relay":
    STOMP_PUSH = {**STOMP_PUSH, "RELAY": os.environ["BENCH_RELAY_SOCKET"]}  # noqa: F405
