"""Pushes on channels-redis's pub/sub layer are published by django_stomp_push.pubsub, which reproduces that layer's
private layout (group channel names, shard choice). An upgrade that changes it must fail here; at run time a
mismatch falls back to the layer's own group_send, and the pushes still arrive."""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.layers import channel_layers
from django.test import override_settings

from django_stomp_push import pubsub
from django_stomp_push.layers import get_layer, group_send, pipelines, send_in_order
from django_stomp_push.redis import PUBSUB_VERIFIED, layer_config, unverified_pubsub_version
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.redis


def test_the_installed_channels_redis_is_a_version_the_publisher_was_verified_with():
    installed = unverified_pubsub_version()
    assert installed is None, (
        f"django_stomp_push.pubsub reproduces channels-redis's pub/sub layout, verified for {PUBSUB_VERIFIED}; "
        f"channels-redis {installed} is installed. Read channels_redis/pubsub.py (group channel names, _get_shard) "
        "and utils._consistent_hash; if unchanged and this file passes, add the series to PUBSUB_VERIFIED."
    )


@pytest.mark.parametrize("hosts", [1, 3])
def test_the_layout_matches_the_installed_channels_redis(hosts):
    urls = [f"redis://127.0.0.1:{6000 + n}" for n in range(hosts)]
    assert pubsub.layout_matches(layer_config(urls, layer="pubsub")["CONFIG"])


@pytest.fixture
def two_redis():
    servers = [RedisServer(free_port()).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def _spread(count, shards):
    """``count`` group names that channels-redis puts on every one of ``shards`` shards."""
    from channels_redis.utils import _consistent_hash

    by_shard: dict[int, list[str]] = {}
    n = 0
    while sum(min(len(v), count // shards) for v in by_shard.values()) < count:
        group = f"stomp_push.d.topic-{n}"
        by_shard.setdefault(_consistent_hash(f"asgi__group__{group}", shards), []).append(group)
        n += 1
    return [g for shard in sorted(by_shard) for g in by_shard[shard][: count // shards]]


def _layers(urls):
    return {"default": layer_config(urls, layer="pubsub"), "reader": layer_config(urls, layer="pubsub")}


async def _subscribed(groups, alias="reader"):
    """A channel of a second, plain channels-redis layer in every group: what another process's hub sees."""
    reader = channel_layers[alias]
    channel = await reader.new_channel()
    for group in groups:
        await reader.group_add(group, channel)
    return reader, channel


async def _receive(reader, channel, count):
    return [await asyncio.wait_for(reader.receive(channel), 5) for _ in range(count)]


def test_a_burst_leaves_in_few_pipelines_in_order_on_every_shard(two_redis):
    urls = [server.url for server in two_redis]
    groups = _spread(8, shards=2)

    async def scenario():
        reader, channel = await _subscribed(groups)
        sends = [send_in_order(groups[n % 8], {"type": "t", "n": n}) for n in range(400)]
        await asyncio.gather(*sends)
        got = await _receive(reader, channel, 400)
        publisher = pubsub.publisher(get_layer(), layer_config(urls, layer="pubsub")["CONFIG"])
        return got, publisher

    with override_settings(CHANNEL_LAYERS=_layers(urls)):
        assert pipelines()
        got, publisher = asyncio.run(scenario())
    used = [shard for shard in publisher.shards if shard.published]
    assert len(used) == 2, "both Redis servers carry groups"
    assert sum(shard.published for shard in used) == 400
    assert sum(shard.batches for shard in used) <= 10, [shard.batches for shard in used]
    for group in groups:  # per group (so per shard), in the order sent
        numbers = [m["n"] for m in got if m["n"] % 8 == groups.index(group)]
        assert numbers == sorted(numbers) and len(numbers) == 50


def test_a_push_cancelled_before_its_batch_left_is_not_sent(two_redis):
    urls = [two_redis[0].url]

    async def scenario():
        reader, channel = await _subscribed(["stomp_push.d.c"])
        first = send_in_order("stomp_push.d.c", {"type": "t", "n": 1})
        cancelled = send_in_order("stomp_push.d.c", {"type": "t", "n": 2})
        last = send_in_order("stomp_push.d.c", {"type": "t", "n": 3})
        cancelled.cancel()
        await asyncio.gather(first, last)
        return await _receive(reader, channel, 2)

    with override_settings(CHANNEL_LAYERS=_layers(urls)):
        assert [m["n"] for m in asyncio.run(scenario())] == [1, 3]


def test_a_layout_that_does_not_match_falls_back_to_the_layers_group_send(two_redis, monkeypatch, caplog):
    from channels_redis.pubsub import RedisPubSubLoopLayer

    monkeypatch.setattr(RedisPubSubLoopLayer, "_get_group_channel_name", lambda self, group: f"{self.prefix}:{group}")
    urls = [server.url for server in two_redis]

    async def scenario():
        reader, channel = await _subscribed(["stomp_push.d.f"])
        for n in range(3):
            await group_send("stomp_push.d.f", {"type": "t", "n": n})
        return await _receive(reader, channel, 3)

    with override_settings(CHANNEL_LAYERS=_layers(urls)), caplog.at_level(logging.WARNING, "django_stomp_push"):
        assert not pipelines()
        assert [m["n"] for m in asyncio.run(scenario())] == [0, 1, 2]
    assert "lays out pub/sub groups differently" in caplog.text


def test_a_sync_send_on_the_pub_sub_layer_publishes_from_the_callers_thread_without_the_layer_loop(
    two_redis, monkeypatch
):
    from django_stomp_push import sync_layer

    monkeypatch.setattr(sync_layer, "_current", None)
    urls = [two_redis[0].url]

    async def subscribe():
        return await _subscribed(["stomp_push.d.s"])

    async def receive(reader, channel):
        return await _receive(reader, channel, 3)

    with override_settings(CHANNEL_LAYERS=_layers(urls)):
        loop = asyncio.new_event_loop()
        try:
            reader, channel = loop.run_until_complete(subscribe())
            for n in range(3):
                sync_layer.send("stomp_push.d.s", {"type": "t", "n": n}, caller="push")
            got = loop.run_until_complete(receive(reader, channel))
        finally:
            loop.close()
    assert [m["n"] for m in got] == [0, 1, 2]
    assert sync_layer._current is None, "the sync path on the pub/sub layer needs no event loop thread"
