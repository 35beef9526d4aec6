"""The relay against a real Redis: one subscription per machine, and what happens when a part of it goes away.

The relay runs in the test's event loop (its command, ``manage.py stomp_push_relay``, serves the multi-server tests:
``redis_layer="relay"``); the server processes' side is the hubs' :class:`RelayedLayer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import decode_hosts

from django_stomp_push.relay import wire
from django_stomp_push.relay.client import RelayedLayer, RelayUnavailable
from django_stomp_push.relay.server import Relay

pytestmark = pytest.mark.redis

GROUP_CHANNEL = "asgi__group__room"


@pytest.fixture
def socket_path() -> Path:
    return Path(tempfile.mkdtemp(prefix="sp-")) / "relay.sock"


@contextlib.asynccontextmanager
async def running_relay(redis_url: str, path: Path, **options: int) -> AsyncIterator[Relay]:
    relay = Relay(decode_hosts([redis_url]), "asgi", **options)
    serving = asyncio.ensure_future(relay.serve(path))
    await until(lambda: path.exists() and all(shard.connected for shard in relay.shards))
    try:
        yield relay
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def subscribers(redis_server, channel: str = GROUP_CHANNEL) -> int:
    return int(redis.Redis(port=redis_server.port).pubsub_numsub(channel)[0][1])


async def hub(layer: RedisPubSubChannelLayer, path: Path) -> tuple[RelayedLayer, str]:
    relayed = RelayedLayer(layer, str(path), "asgi")
    return relayed, await relayed.new_channel("stomp_push.hub.")


async def in_room(layer: RedisPubSubChannelLayer, path: Path) -> tuple[RelayedLayer, str]:
    """A hub behind the relay at ``path``, in the group "room"."""
    relayed, channel = await hub(layer, path)
    await relayed.group_add("room", channel)
    return relayed, channel


async def arrives(publisher: RedisPubSubChannelLayer, relayed: RelayedLayer, channel: str, number: int) -> None:
    """A push to "room" published now reaches the hub."""
    await publisher.group_send("room", {"type": "push", "n": number})
    assert (await asyncio.wait_for(relayed.receive(channel), 5))["n"] == number


def test_hubs_behind_one_relay_are_one_subscriber_in_redis_and_each_receives_every_push(redis_server, socket_path):
    async def scenario() -> None:
        layer = RedisPubSubChannelLayer(hosts=[redis_server.url])
        async with running_relay(redis_server.url, socket_path):
            hubs = [await hub(layer, socket_path) for _ in range(3)]
            for relayed, channel in hubs:
                await relayed.group_add("room", channel)
            assert subscribers(redis_server) == 1
            for number in range(5):
                await layer.group_send("room", {"type": "push", "n": number})
            for relayed, channel in hubs:
                got = [await asyncio.wait_for(relayed.receive(channel), 5) for _ in range(5)]
                assert [message["n"] for message in got] == [0, 1, 2, 3, 4]
            # A process's own channel (its probes) reaches that process only.
            await layer.send(hubs[0][1], {"type": "probe"})
            assert await asyncio.wait_for(hubs[0][0].receive(hubs[0][1]), 5) == {"type": "probe"}
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(hubs[1][0].receive(hubs[1][1]), 0.3)
            for left, (relayed, channel) in enumerate(hubs, 1):
                await relayed.group_discard("room", channel)
                expected = 0 if left == len(hubs) else 1
                await until(lambda expected=expected: subscribers(redis_server) == expected)
                relayed.close()

    asyncio.run(scenario())


def test_after_the_relay_is_lost_joins_fail_and_once_it_is_back_the_hub_is_subscribed_again_and_told(
    redis_server, socket_path
):
    async def scenario() -> None:
        layer = RedisPubSubChannelLayer(hosts=[redis_server.url])
        resets: list[int] = []
        async with running_relay(redis_server.url, socket_path):
            relayed, channel = await in_room(layer, socket_path)
            relayed.on_reset = lambda: resets.append(1)
        await until(lambda: subscribers(redis_server) == 0)
        with pytest.raises(RelayUnavailable):
            await relayed.group_add("elsewhere", channel)
        assert resets == []
        async with running_relay(redis_server.url, socket_path):
            await until(lambda: resets == [1] and subscribers(redis_server) == 1)
            await arrives(layer, relayed, channel, 7)
            relayed.close()

    asyncio.run(scenario())


def test_a_redis_restart_behind_the_relay_resets_the_hubs_and_pushes_arrive_again(redis_server, socket_path):
    async def scenario() -> None:
        layer = RedisPubSubChannelLayer(hosts=[redis_server.url])
        resets: list[int] = []
        async with running_relay(redis_server.url, socket_path):
            relayed, channel = await in_room(layer, socket_path)
            relayed.on_reset = lambda: resets.append(1)
            redis_server.stop()
            redis_server.start()
            await until(lambda: resets != [] and subscribers(redis_server) == 1, timeout=20)
            await layer.flush()  # the layer's connections were to the Redis that stopped
            await arrives(RedisPubSubChannelLayer(hosts=[redis_server.url]), relayed, channel, 1)
            relayed.close()

    asyncio.run(scenario())


def test_a_hung_redis_holds_a_join_until_it_answers(redis_server, socket_path):
    async def scenario() -> None:
        layer = RedisPubSubChannelLayer(hosts=[redis_server.url])
        async with running_relay(redis_server.url, socket_path):
            relayed, channel = await hub(layer, socket_path)
            redis_server.process.send_signal(signal.SIGSTOP)
            try:
                joining = asyncio.ensure_future(relayed.group_add("room", channel))
                await asyncio.sleep(1.0)
                assert not joining.done()
            finally:
                redis_server.process.send_signal(signal.SIGCONT)
            await asyncio.wait_for(joining, 10)
            await arrives(layer, relayed, channel, 2)
            relayed.close()

    asyncio.run(scenario())


def test_a_process_that_does_not_read_is_cut_off_and_the_others_get_every_push(redis_server, socket_path):
    async def scenario() -> None:
        layer = RedisPubSubChannelLayer(hosts=[redis_server.url])
        async with running_relay(redis_server.url, socket_path, max_behind=1024 * 1024) as relay:
            relayed, channel = await in_room(layer, socket_path)
            stuck = socket.socket(socket.AF_UNIX)
            stuck.connect(str(socket_path))
            stuck.sendall(wire.subscribe(GROUP_CHANNEL))
            await until(lambda: len(relay.subscribers.get(GROUP_CHANNEL.encode(), ())) == 2)
            body = "x" * 64 * 1024
            for number in range(80):  # 5 MiB: past what the socket buffers and the relay holds for it
                await layer.group_send("room", {"type": "push", "n": number, "body": body})
                got = await asyncio.wait_for(relayed.receive(channel), 5)
                assert got["n"] == number
            await until(lambda: len(relay.subscribers.get(GROUP_CHANNEL.encode(), ())) == 1)
            stuck.setblocking(False)  # read in this event loop: the relay runs in it too
            received = b""
            while chunk := await asyncio.wait_for(asyncio.get_running_loop().sock_recv(stuck, 1 << 20), 5):
                received += chunk
            assert received.endswith(b"\n") and b"ERR too slow" in received[-200:]
            stuck.close()
            relayed.close()

    asyncio.run(scenario())


def test_a_stranger_on_the_socket_is_answered_err_and_the_relay_serves_the_others(redis_server, socket_path):
    async def scenario() -> None:
        layer = RedisPubSubChannelLayer(hosts=[redis_server.url])
        async with running_relay(redis_server.url, socket_path) as relay:
            relayed, channel = await in_room(layer, socket_path)
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
            writer.write(b"MSG " + GROUP_CHANNEL.encode() + b" 6\nforged")
            assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"ERR unknown command")
            writer.close()
            assert len(relay.locals) == 1
            await arrives(layer, relayed, channel, 3)
            relayed.close()

    asyncio.run(scenario())


def test_a_second_relay_on_the_same_socket_refuses_to_start_and_a_stale_socket_is_replaced(redis_server, socket_path):
    async def scenario() -> None:
        async with running_relay(redis_server.url, socket_path):
            with pytest.raises(FileExistsError, match="another relay"):
                await Relay(decode_hosts([redis_server.url]), "asgi").serve(socket_path)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(socket_path))  # a socket file nobody listens on (a relay that was killed)
        stale.close()
        async with running_relay(redis_server.url, socket_path):
            layer = RedisPubSubChannelLayer(hosts=[redis_server.url])
            relayed, _ = await in_room(layer, socket_path)
            assert subscribers(redis_server) == 1
            relayed.close()

    asyncio.run(scenario())
