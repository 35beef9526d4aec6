"""Sending through the channel layer, with two corrections the defaults need for a push server.

- Capacity: both Channels layers drop messages silently for a channel 100 messages behind. A hub channel
  carries every push for its process, so a burst of pushes would be lost; hub channels get
  :data:`HUB_CHANNEL_CAPACITY` unless ``channel_capacity`` in ``CHANNEL_LAYERS`` already names them.
- In-memory layer: it only reaches this process, so a group send is handed straight to the local hubs that
  joined the group, with the same at-most-once semantics and without the layer's per-send sweep of every
  channel and group.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Awaitable
from typing import Any, Protocol

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from django.conf import settings

from .conf import get_config
from .layer_messages import HUB_CHANNEL_CAPACITY, HUB_CHANNEL_PREFIX

_HUB_PATTERN = re.compile(r"stomp_push\.hub\.")


def get_layer(alias: str | None = None) -> Any:
    """The channel layer for ``alias`` (default: the ``CHANNEL_LAYER`` setting), prepared for hub channels."""
    alias = alias or get_config().channel_layer
    layer = get_channel_layer(alias)
    if layer is None and alias == DEFAULT_CHANNEL_LAYER and not getattr(settings, "CHANNEL_LAYERS", None):
        # No CHANNEL_LAYERS at all: the embedded default, so that runserver works with INSTALLED_APPS alone.
        channel_layers.set(alias, InMemoryChannelLayer())
        layer = get_channel_layer(alias)
    if layer is None:
        raise _missing(alias)
    # Read through vars(): the pub/sub layer forwards unknown attributes to its per-loop layer, which needs a
    # running event loop.
    if not vars(layer).get("_stomp_push_prepared", False):
        layer._stomp_push_pubsub = f"{type(layer).__module__}.{type(layer).__qualname__}" == PUBSUB_BACKEND
        capacities = vars(layer).get("channel_capacity")
        if isinstance(capacities, list) and not any(p.match(HUB_CHANNEL_PREFIX + ".x") for p, _ in capacities):
            capacities.insert(0, (_HUB_PATTERN, HUB_CHANNEL_CAPACITY))
        layer._stomp_push_prepared = True
    return layer


def hub_layer(alias: str) -> Any:
    """The layer a hub of the running event loop joins and receives through: with ``RELAY`` set, a
    :class:`~.relay.client.RelayedLayer` (one per hub) over the pub/sub layer, else the layer itself."""
    layer = get_layer(alias)
    relay = get_config().relay
    if relay is None or not vars(layer).get("_stomp_push_pubsub", False):
        return layer  # (RELAY with another layer: stomp_push.E008 keeps the server from starting)
    from . import pubsub
    from .relay.client import RelayedLayer

    config = _config_of(layer, alias)
    if not pubsub.supported(layer, config):
        return layer  # channels-redis names its channels otherwise: the relay refuses to start, and said why
    return RelayedLayer(layer, relay, config.get("prefix", "asgi"))


IN_MEMORY_BACKEND = "channels.layers.InMemoryChannelLayer"
PUBSUB_BACKEND = "channels_redis.pubsub.RedisPubSubChannelLayer"


def layer_backend(alias: str | None = None) -> str:
    """The dotted path of the channel layer's BACKEND, without importing it or creating the layer; RuntimeError
    as :func:`get_layer` when there is none."""
    alias = alias or get_config().channel_layer
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not layers and alias == DEFAULT_CHANNEL_LAYER:
        return IN_MEMORY_BACKEND  # the embedded default
    if alias not in layers:
        raise _missing(alias)
    return str(layers[alias].get("BACKEND", ""))


def _missing(alias: str) -> RuntimeError:
    return RuntimeError(
        f"django-stomp-push needs a channel layer: CHANNEL_LAYERS has no {alias!r} entry "
        "(see the 'Deployment' page of the docs)"
    )


def groups_expire(layer: Any) -> bool:
    """Does ``layer`` forget group members after a while (channels-redis's core layer: ``group_expiry``)?"""
    return not vars(layer).get("_stomp_push_pubsub", False) and not is_process_local(layer)


def is_process_local(layer: Any) -> bool:
    """True for layers that cannot reach other processes (the in-memory layer)."""
    return isinstance(layer, InMemoryChannelLayer)


class LocalReceiver(Protocol):
    """What the in-memory shortcut needs of a process's hub."""

    def has_joined(self, group: str) -> bool: ...

    def dispatch(self, message: dict[str, Any]) -> None: ...


# The hubs of this process: one per event loop and channel-layer alias.
_local: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = weakref.WeakKeyDictionary()


def register_local(alias: str, receiver: LocalReceiver) -> None:
    """Make ``receiver`` the hub of the running event loop for ``alias``."""
    _local.setdefault(asyncio.get_running_loop(), {})[alias] = receiver


def local_receivers(alias: str) -> dict[asyncio.AbstractEventLoop, Any]:
    """The hubs of this process for ``alias``, by event loop."""
    return {loop: hubs[alias] for loop, hubs in list(_local.items()) if alias in hubs}


async def group_send(group: str, message: dict[str, Any], alias: str | None = None) -> None:
    """Send ``message`` to every hub that joined ``group``, in this process or (channels-redis) any other."""
    sent = send_in_order(group, message, alias)
    if sent is not None:
        await sent


def send_in_order(group: str, message: dict[str, Any], alias: str | None = None) -> Awaitable[None] | None:
    """Start sending ``message`` to ``group`` behind every earlier send of this event loop, without waiting.

    Returns None when the send is done already (in-memory layer), an awaitable that ends once the layer took the
    message (or raises its error) otherwise. On the pub/sub layer the sends of a loop are pipelined
    (:mod:`~.pubsub`) and leave in the order they were started, so a caller may start the next one before this one
    ends; on the core layer the awaitable is the layer's ``group_send`` itself, which must be awaited before the
    next one starts for the order to hold.
    """
    alias = alias or get_config().channel_layer
    layer = get_layer(alias)
    if is_process_local(layer):
        running = asyncio.get_running_loop()
        for loop, hub in local_receivers(alias).items():
            if not hub.has_joined(group):
                continue
            if loop is running:
                hub.dispatch(message)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(hub.dispatch, message)
        return None
    publisher = _publisher(layer, alias)
    if publisher is not None:
        return publisher.group_send(group, message)  # type: ignore[no-any-return]
    return layer.group_send(group, message)  # type: ignore[no-any-return]


def pipelines(alias: str | None = None) -> bool:
    """Do the sends of :func:`send_in_order` keep their order without being awaited one by one?"""
    alias = alias or get_config().channel_layer
    layer = get_layer(alias)
    if is_process_local(layer):
        return True
    if not vars(layer).get("_stomp_push_pubsub", False):
        return False
    from . import pubsub

    return pubsub.supported(layer, _config_of(layer, alias))


def _publisher(layer: Any, alias: str) -> Any:
    """The pipelined publisher of the running loop when ``layer`` is channels-redis's pub/sub layer."""
    if not vars(layer).get("_stomp_push_pubsub", False):
        return None
    from . import pubsub

    return pubsub.publisher(layer, _config_of(layer, alias))


def sync_publisher(alias: str | None, timeout: float) -> Any:
    """The pub/sub layer's publisher for synchronous callers (:class:`~.pubsub.SyncPublisher`), or None."""
    alias = alias or get_config().channel_layer
    layer = get_layer(alias)
    if not vars(layer).get("_stomp_push_pubsub", False):
        return None
    from . import pubsub

    return pubsub.sync_publisher(layer, _config_of(layer, alias), timeout)


def _config_of(layer: Any, alias: str) -> dict[str, Any]:
    """The ``CONFIG`` ``layer`` was built from (copied once per layer: a push must not copy it)."""
    config: dict[str, Any] | None = vars(layer).get("_stomp_push_config")
    if config is None:
        config = dict(settings.CHANNEL_LAYERS[alias].get("CONFIG") or {})
        layer._stomp_push_config = config
    return config
