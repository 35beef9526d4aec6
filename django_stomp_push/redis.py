"""channels-redis settings that work for a push server, and detection of the combinations that do not.

With redis-py 8 and channels-redis 4.3 defaults, two things go wrong under a push server's load:

- redis-py's default ``socket_timeout`` is 5 s, the same as channels-redis's 5 s blocking read (``BZPOPMIN``):
  after 5 idle seconds the read times out, the process's receive loop fails, and messages meant for that
  process are lost until it recovers.
- the pool's default ``max_connections`` (100) raises ``MaxConnectionsError`` instead of waiting when more
  commands run at once (many concurrent group joins at start-up).

:func:`layer_config` builds a ``CHANNEL_LAYERS`` entry without those problems; system check
``stomp_push.W005`` reports a configuration that has them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

from .layer_messages import HUB_CHANNEL_CAPACITY, HUB_CHANNEL_PREFIX

#: channels-redis blocks this many seconds in BZPOPMIN per receive.
BLOCKING_READ_SECONDS = 5
SOCKET_TIMEOUT = 30
MAX_CONNECTIONS = 1000
#: channels-redis release series whose pub/sub group layout django_stomp_push.pubsub reproduces.
PUBSUB_VERIFIED = ("4.2", "4.3")
#: ``layer_config(layer=...)``: the channels-redis layer classes.
LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def _redis_default_socket_timeout() -> float | None:
    """redis-py's default ``socket_timeout`` (redis-py >= 8), None before 8 (no timeout by default).

    The system checks run for every ``manage.py`` command, and importing redis-py takes about a tenth of a second:
    unless redis-py is imported already, its small ``_defaults`` module (which needs only ``socket``) is read on
    its own.
    """
    module = sys.modules.get("redis._defaults")
    if module is None:
        try:
            module = _load_defaults_alone()
        except Exception:
            module = None
    if module is None:
        try:
            import redis._defaults as module
        except ImportError:
            return None
    return getattr(module, "DEFAULT_SOCKET_TIMEOUT", None)


def _load_defaults_alone() -> ModuleType | None:
    spec = importlib.util.find_spec("redis")  # finds the package without importing it
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(location, "_defaults.py")
        if os.path.exists(path):
            alone: Any = importlib.util.spec_from_file_location("django_stomp_push._redis_defaults", path)
            module = importlib.util.module_from_spec(alone)
            alone.loader.exec_module(module)
            return module
    return None


def layer_config(
    url: str | list[str],
    *,
    layer: str = "pubsub",
    capacity: int = 1000,
    expiry: int = 60,
    group_expiry: int = 86400,
    prefix: str = "asgi",
    **host_options: Any,
) -> dict[str, Any]:
    """A ``CHANNEL_LAYERS`` entry for channels-redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``).

    ``layer="pubsub"`` (the default) builds channels-redis's pub/sub layer (``RedisPubSubChannelLayer``): a push
    costs Redis one PUBLISH whatever the number of server processes, and receiving it costs each process a fraction
    of what the core layer's does (see "Choosing a channel layer" in the deployment docs). ``layer="core"`` builds
    ``RedisChannelLayer``; ``capacity``, ``expiry`` and ``group_expiry`` are its options, not used by pub/sub.
    A list of URLs shards the groups over several Redis servers (each group lives on one of them).
    """
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {', '.join(map(repr, LAYERS))}, not {layer!r}")
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("layer_config() needs at least one Redis URL")
    hosts = [
        {
            "address": address,
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": 5,
            "socket_keepalive": True,
            "max_connections": MAX_CONNECTIONS,
            "health_check_interval": 15,
            **host_options,
        }
        for address in urls
    ]
    if layer == "pubsub":
        return {"BACKEND": LAYERS[layer], "CONFIG": {"hosts": hosts, "prefix": prefix}}
    return {
        "BACKEND": LAYERS[layer],
        "CONFIG": {
            "hosts": hosts,
            "capacity": capacity,
            "expiry": expiry,
            "group_expiry": group_expiry,
            "prefix": prefix,
            "channel_capacity": {HUB_CHANNEL_PREFIX + ".*": HUB_CHANNEL_CAPACITY},
        },
    }


def unverified_pubsub_version() -> str | None:
    """The installed channels-redis version when its release series is not in :data:`PUBSUB_VERIFIED`, else None
    (read from the package metadata: the system checks leave redis-py unimported)."""
    from importlib.metadata import version

    installed = version("channels-redis")
    return None if ".".join(installed.split(".")[:2]) in PUBSUB_VERIFIED else installed


def broken_host_settings(config: dict[str, Any]) -> list[str]:
    """Problems with a channels-redis ``CONFIG``'s hosts, as sentences (empty when fine)."""
    problems: list[str] = []
    hosts = config.get("hosts") or ["redis://localhost:6379"]
    default_timeout = _redis_default_socket_timeout()
    for host in hosts if isinstance(hosts, (list, tuple)) else [hosts]:
        options = host if isinstance(host, dict) else {}
        name = options.get("address") or options.get("master_name") or host
        timeout = options.get("socket_timeout", default_timeout)
        if timeout is not None and timeout <= BLOCKING_READ_SECONDS:
            problems.append(
                f"channels-redis host {name!r}: socket_timeout {timeout}s is not longer than the layer's "
                f"{BLOCKING_READ_SECONDS}s blocking read; idle receive loops time out and messages are lost."
            )
        if "master_name" not in options and options.get("max_connections") is None:
            problems.append(
                f"channels-redis host {name!r}: the redis-py pool raises MaxConnectionsError past 100 "
                "concurrent commands; set max_connections."
            )
    return problems
