"""Publishing to channels-redis's pub/sub layer in pipelines: one round trip for every push that is ready.

channels-redis's ``RedisPubSubChannelLayer`` publishes one message per round trip, one at a time per shard (a
lock per connection). A push server publishes in bursts (a view pushing to several topics, a client streaming
SENDs, a task notifying thousands of users): every push then waits for all the earlier ones' round trips, and
Redis handles each PUBLISH in its own event-loop turn, writing to every subscribed process's socket once per push.

A :class:`Publisher` (one per event loop and layer) queues pushes per shard and sends whatever is queued in one
pipeline while no other pipeline of that shard is in flight. A lone push still costs one round trip; a burst costs
one round trip per batch, and Redis writes to each subscriber's socket once per batch instead of once per push.
Pushes leave in the order they were queued (per shard: a group always lives on the same shard). A push whose
caller was cancelled before its batch left is not sent.

The message format is channels-redis's own: the channel of group ``g`` is ``{prefix}__group__{g}``, on the shard
``channels_redis.utils._consistent_hash(channel, len(hosts))``, serialized by the layer's ``serialize()``. That
layout is private to channels-redis, so it is checked once per layer against the installed channels-redis
(:func:`layout_matches`): if it differs, pushes go through the layer's own ``group_send`` (correct, unbatched) and
one warning says so. ``django_stomp_push.redis.PUBSUB_VERIFIED`` lists the versions whose layout was read;
tests/test_pubsub_seam.py fails when the installed version is not among them.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from typing import Any

import redis
from channels_redis.utils import _consistent_hash, create_pool, decode_hosts
from redis import asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeout

logger = logging.getLogger("django_stomp_push")

BACKEND = "channels_redis.pubsub.RedisPubSubChannelLayer"
#: PUBLISH commands per pipeline at most (a huge burst leaves in several round trips, not one giant one).
MAX_BATCH = 512


class Shard:
    """The pushes queued for one Redis server of the layer, and the one pipeline in flight to it."""

    def __init__(self, host: dict[str, Any]) -> None:
        self.host = host
        self.client: Any = None
        self.queue: deque[tuple[str, bytes, asyncio.Future[None]]] = deque()
        self.sending: asyncio.Task[None] | None = None
        #: Counters for tests and the benchmark: pipelines sent, pushes sent in them.
        self.batches = 0
        self.published = 0

    def publish(self, channel: str, payload: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append((channel, payload, future))
        if self.sending is None or self.sending.done():
            self.sending = asyncio.get_running_loop().create_task(self._send())
        return future

    async def _send(self) -> None:
        while self.queue:
            batch: list[tuple[str, bytes, asyncio.Future[None]]] = []
            while self.queue and len(batch) < MAX_BATCH:
                entry = self.queue.popleft()
                if not entry[2].cancelled():
                    batch.append(entry)
            if not batch:
                continue
            try:
                pipe = self._client().pipeline(transaction=False)
                for channel, payload, _ in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()
            except asyncio.CancelledError:
                _fail(batch, ConnectionError("the publisher was stopped before the push left"))
                raise
            except Exception as exc:
                _fail(batch, exc)
                continue
            self.batches += 1
            self.published += len(batch)
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _client(self) -> Any:
        if self.client is None:
            self.client = aioredis.Redis(connection_pool=create_pool(self.host))
        return self.client


def _fail(batch: list[tuple[str, bytes, asyncio.Future[None]]], exc: BaseException) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(exc)
            future.exception()  # retrieved: a caller that stopped waiting must not make asyncio log it


class Publisher:
    """Pipelined ``group_send`` for one pub/sub layer on one event loop."""

    def __init__(self, layer: Any, hosts: list[dict[str, Any]], prefix: str) -> None:
        self.layer = layer
        self.prefix = prefix
        self.shards = [Shard(host) for host in hosts]

    def group_send(self, group: str, message: dict[str, Any]) -> asyncio.Future[None]:
        """Queue ``message`` for ``group``; the future is done once Redis took it (or failed with the error)."""
        channel = f"{self.prefix}__group__{group}"
        shard: Shard = self.shards[_consistent_hash(channel, len(self.shards))]
        return shard.publish(channel, self.layer.serialize(message))


class SyncPublisher:
    """``group_send`` from synchronous code on the pub/sub layer: one PUBLISH from the caller's thread over a
    thread-safe redis-py pool, with no event loop and no thread hand-off (a push from a view costs a fraction of
    what a send through the process's layer loop does). redis-py's pools reconnect after a fork."""

    def __init__(self, layer: Any, hosts: list[dict[str, Any]], prefix: str, timeout: float) -> None:
        self.layer = layer
        self.prefix = prefix
        self.clients = []
        for host in hosts:
            options = {k: v for k, v in host.items() if k != "address"}
            options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
            self.clients.append(redis.Redis.from_url(host["address"], **options))

    def group_send(self, group: str, message: dict[str, Any]) -> None:
        channel = f"{self.prefix}__group__{group}"
        client = self.clients[_consistent_hash(channel, len(self.clients))]
        try:
            client.publish(channel, self.layer.serialize(message))
        except RedisTimeout as exc:
            raise TimeoutError(str(exc)) from exc


_sync_publishers: weakref.WeakKeyDictionary[Any, tuple[float, SyncPublisher | None]] = weakref.WeakKeyDictionary()


def sync_publisher(layer: Any, config: dict[str, Any], timeout: float) -> SyncPublisher | None:
    """The :class:`SyncPublisher` of ``layer`` with ``timeout`` (``LAYER_TIMEOUT``), or None where the layer's
    hosts are not plain URLs (Sentinel: the loop's publisher handles those) or its layout does not match."""
    known = _sync_publishers.get(layer)
    if known is not None and known[0] == timeout:
        return known[1]
    found: SyncPublisher | None = None
    if supported(layer, config):
        hosts = decode_hosts(config.get("hosts"))
        if all("address" in host for host in hosts):
            found = SyncPublisher(layer, hosts, config.get("prefix", "asgi"), timeout)
    _sync_publishers[layer] = (timeout, found)
    return found


# layer -> {loop: Publisher}, or None for a layer whose layout did not match (checked once per layer)
_publishers: weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Publisher] | None]
_publishers = weakref.WeakKeyDictionary()


def publisher(layer: Any, config: dict[str, Any]) -> Publisher | None:
    """The running loop's :class:`Publisher` for ``layer`` (a pub/sub layer built from ``config``, its
    ``CHANNEL_LAYERS`` entry's ``CONFIG``), or None when its layout is not the one this module reproduces."""
    if not supported(layer, config):
        return None
    per_loop = _publishers[layer]
    assert per_loop is not None
    loop = asyncio.get_running_loop()
    found = per_loop.get(loop)
    if found is None:
        found = per_loop[loop] = Publisher(layer, decode_hosts(config.get("hosts")), config.get("prefix", "asgi"))
    return found


def supported(layer: Any, config: dict[str, Any]) -> bool:
    """Can ``layer``'s pushes go through a :class:`Publisher` (checked once per layer)?"""
    try:
        return _publishers[layer] is not None
    except KeyError:
        _publishers[layer] = weakref.WeakKeyDictionary() if layout_matches(config) else None
        return _publishers[layer] is not None


def layout_matches(config: dict[str, Any]) -> bool:
    """Does the installed channels-redis name and shard group channels as :class:`Publisher` does?"""
    try:
        from channels_redis.pubsub import RedisPubSubLoopLayer

        prefix = config.get("prefix", "asgi")
        hosts = decode_hosts(config.get("hosts"))
        probe = RedisPubSubLoopLayer(hosts=hosts, prefix=prefix)
        for group in ("stomp_push.hubs", "stomp_push.d.probe", "stomp_push.u.probe2"):
            channel = probe._get_group_channel_name(group)
            if channel != f"{prefix}__group__{group}":
                raise ValueError(f"group channel {channel!r}")
            if probe._get_shard(channel) is not probe._shards[_consistent_hash(channel, len(hosts))]:
                raise ValueError("shard choice")
        return True
    except Exception as exc:
        logger.warning(
            "django-stomp-push: the installed channels-redis lays out pub/sub groups differently (%s: %s); pushes "
            "use the layer's own group_send, one round trip each",
            type(exc).__name__,
            exc,
        )
        return False
