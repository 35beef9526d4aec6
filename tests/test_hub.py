"""The process-local delivery hub: one render per push, group membership, closes mid-broadcast, slow consumers."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from django.test import override_settings

from django_stomp_push import apush
from django_stomp_push.destinations import destination_group, session_group, user_group
from django_stomp_push.hub import Hub, get_hub
from django_stomp_push.listener import RECOVERY_INTERVAL
from django_stomp_push.redis import layer_config
from tests.stompclient import StompTestClient, application
from tests.test_consumer import connected, expect_error, sign_in, stomp_settings, subscribe
from tests.test_membership import GroupCommands, membership, until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def key(alice, login):
    return await sign_in(alice, login)


class Valve:
    """Wraps the ASGI app of one connection so its sends can be held, like a client that stopped reading."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.held = 0

    def app(self, inner: Any = None) -> Any:
        inner = inner or application()

        async def held_app(scope, receive, send):
            async def held_send(message):
                if not self.open.is_set():
                    self.held += 1
                    await self.open.wait()
                await send(message)

            await inner(scope, receive, held_send)

        return held_app


# -- one render, every local subscriber ----------------------------------------------------------------------


async def test_a_push_reaches_every_local_subscriber_in_one_pass(key):
    clients = [await connected(key) for _ in range(3)]
    for client in clients:
        await subscribe(client, "/topic/fan-out")
    hub = await get_hub()
    pushes, deliveries = hub.stats["pushes"], hub.stats["deliveries"]
    await apush("/topic/fan-out", "to all")
    assert (hub.stats["pushes"] - pushes, hub.stats["deliveries"] - deliveries) == (1, 3)
    for client in clients:
        assert (await client.receive()).body == b"to all"
        await client.close()


# -- group membership ----------------------------------------------------------------------------------------


async def test_the_hub_joins_a_topics_group_with_its_first_subscriber_and_leaves_with_its_last(key):
    group = destination_group("/topic/membership")
    first, second = await connected(key), await connected(key)
    hub = await get_hub()
    assert not hub.has_joined(group)
    await subscribe(first, "/topic/membership")
    await subscribe(second, "/topic/membership")
    assert hub.has_joined(group)
    await first.send("UNSUBSCRIBE", {"id": "s1", "receipt": "u"})
    assert (await first.receive()).command == "RECEIPT"
    assert hub.has_joined(group)
    await second.close()
    assert not hub.has_joined(group)
    await first.close()


async def test_closed_connections_leave_every_table_of_the_hub(key):
    clients = [await connected(key) for _ in range(3)]
    for n, client in enumerate(clients):
        await subscribe(client, f"/topic/t{n}")
        await subscribe(client, "/user/queue/x", "u")
    hub = await get_hub()
    assert hub.topics and hub.users and hub.sessions
    await clients[0].close()
    await clients[1].send("DISCONNECT")
    await clients[1].communicator.wait()
    await clients[2].send("PUBLISH")  # closed by the server after a protocol error
    await clients[2].receive_error()
    await clients[2].communicator.wait()
    assert (hub.topics, hub.users, hub.sessions) == ({}, {}, {})
    assert hub.groups.refs == {"stomp_push.hubs": 1}


async def test_an_unknown_channel_layer_message_is_logged_and_ignored(caplog):
    hub = await get_hub()
    with caplog.at_level(logging.WARNING, logger="django_stomp_push"):
        hub.dispatch({"type": "something.else"})
    assert "something.else" in caplog.text


async def test_there_is_one_hub_per_event_loop():
    assert await get_hub() is await get_hub()


async def test_a_caller_cancelled_during_start_up_does_not_fail_the_others_waiting_for_it(monkeypatch, caplog):
    hub = Hub("default")
    new_channel = hub.layer.new_channel

    async def slow_new_channel(*args, **kwargs):  # like a channel layer that is slow to answer
        await asyncio.sleep(0.1)
        return await new_channel(*args, **kwargs)

    monkeypatch.setattr(hub.layer, "new_channel", slow_new_channel)
    with caplog.at_level(logging.ERROR):
        first, second = asyncio.create_task(hub.start()), asyncio.create_task(hub.start())
        await asyncio.sleep(0.02)
        first.cancel()  # e.g. its client went away and the server cancelled the consumer
        await asyncio.wait_for(second, 2)
        assert first.cancelled()
        assert hub.channel_name and hub.has_joined("stomp_push.hubs")
        await hub.start()  # started once: a later call returns at once
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_caller_cancelled_while_joining_a_group_does_not_fail_the_others_or_leak_the_group(monkeypatch):
    hub = Hub("default")
    await hub.start()
    hub.groups.local = False  # go through the layer's group_add, made slow below
    added, discarded = [], []

    async def slow_group_add(group, channel):
        await asyncio.sleep(0.1)
        added.append(group)

    async def group_discard(group, channel):
        discarded.append(group)

    monkeypatch.setattr(hub.layer, "group_add", slow_group_add)
    monkeypatch.setattr(hub.layer, "group_discard", group_discard)
    first, second = asyncio.create_task(hub.join("g")), asyncio.create_task(hub.join("g"))
    await asyncio.sleep(0.02)
    first.cancel()
    await asyncio.wait_for(second, 2)
    assert first.cancelled() and added == ["g"] and hub.has_joined("g")
    hub.leave("g")  # the only registered user leaves: the group is left on the layer
    await asyncio.sleep(0.05)
    assert not hub.has_joined("g") and discarded == ["g"]


class BoundOutlet:
    """What the hub reads of a connection when it binds it to its user and session."""

    def __init__(self, user_key: str, session_key_hash: str) -> None:
        self.user_key, self.session_key_hash = user_key, session_key_hash


async def test_a_bind_cancelled_while_joining_then_unbound_leaves_every_count_exact(monkeypatch):
    hub = Hub("default")
    await hub.start()
    hub.groups.local = False

    async def slow_group_add(group, channel):
        await asyncio.sleep(0.1)

    async def group_discard(group, channel):
        pass

    monkeypatch.setattr(hub.layer, "group_add", slow_group_add)
    monkeypatch.setattr(hub.layer, "group_discard", group_discard)
    # Two tabs of one session connect at once; one goes away while the session's group is being joined.
    other, outlet = BoundOutlet("u1", "s1"), BoundOutlet("u1", "s1")
    binding_other = asyncio.create_task(hub.bind(other))
    binding = asyncio.create_task(hub.bind(outlet))
    await asyncio.sleep(0.02)
    binding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await binding
    hub.unbind(outlet)  # what the connection does after a failed or cancelled CONNECT
    await binding_other
    # The remaining tab still counts in both groups: a session end or a user message still reaches it.
    assert hub.groups.refs[user_group("u1")] == 1 and hub.groups.refs[session_group("s1")] == 1
    assert hub.sessions == {"s1": {other}} and hub.users == {"u1": {other}}


class RestartingLayer(GroupCommands):
    """A layer whose blocking receive fails at once when its Redis restarts (the read's connection is reset),
    and every command fails until it is back."""

    def __init__(self) -> None:
        super().__init__(delay=0)
        self.down = False
        self.reset = asyncio.Event()

    def restart(self, up: bool) -> None:
        self.down = not up
        if not up:
            self.members.clear()  # no persistence
            self.reset.set()

    async def receive(self, channel: str) -> dict:
        if self.down:
            raise ConnectionError("Connection refused")
        self.reset.clear()
        await self.reset.wait()
        raise ConnectionError("Connection reset by peer")

    async def _command(self, failing: str) -> None:
        if self.down:
            raise ConnectionError("Connection refused")


async def test_after_a_redis_restart_the_hub_rejoins_its_groups_within_the_recovery_interval_and_logs_once(caplog):
    layer = RestartingLayer()
    hub = Hub("default")
    hub.layer, hub.local, hub.channel_name = layer, False, "stomp_push.hub.test"
    hub.groups = membership(layer)
    await hub.join("g")
    with caplog.at_level(logging.WARNING, logger="django_stomp_push"):
        hub._task = asyncio.get_running_loop().create_task(hub._listener().run())
        await asyncio.sleep(0.01)
        layer.restart(up=False)
        await asyncio.sleep(1.0)  # five re-join attempts fail meanwhile
        layer.restart(up=True)
        back = time.monotonic()
        await until(lambda: layer.members == {"g"})
        rejoined = time.monotonic() - back
        await hub.stop()
    assert rejoined < RECOVERY_INTERVAL + 0.1, rejoined
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]
    assert "receive failed" in caplog.records[0].getMessage() and caplog.records[0].exc_info
    assert "is back after" in caplog.records[1].getMessage()


class CancellationSwallowingLayer:
    """A layer whose receive swallows one cancellation, as redis-py does when it lands as a read times out."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    async def receive(self, channel: str) -> dict:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
        await self.released.wait()  # the next blocking read
        return {"type": "stomp_push.end_sessions", "sessions": [], "reason": ""}


async def test_stop_ends_the_listener_even_when_the_layer_swallows_a_cancellation():
    hub = Hub("default")
    hub.layer, hub.local, hub.channel_name = CancellationSwallowingLayer(), False, "stomp_push.hub.test"
    hub._task = asyncio.get_running_loop().create_task(hub._listener().run())
    await asyncio.sleep(0.01)
    stopping = asyncio.get_running_loop().create_task(hub.stop())
    done, _ = await asyncio.wait([stopping], timeout=3)
    hub.layer.released.set()
    await stopping
    assert stopping in done and hub._task is None


# -- closes during a broadcast -------------------------------------------------------------------------------


async def test_a_connection_closed_during_a_broadcast_leaves_the_others_unharmed(key, caplog):
    with stomp_settings(max_pending_acks=1), caplog.at_level(logging.ERROR):
        before, closing, after = await connected(key), await connected(key), await connected(key)
        await subscribe(before, "/topic/mid")
        await subscribe(closing, "/topic/mid", ack="client")  # its second delivery exceeds the pending-ack limit
        await subscribe(after, "/topic/mid")
        for n in range(3):
            await apush("/topic/mid", str(n))
        assert (await closing.receive()).body == b"0"
        await expect_error(closing, "too many unacknowledged messages", 1008)
        for client in (before, after):
            assert [(await client.receive()).body for _ in range(3)] == [b"0", b"1", b"2"]
            await client.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- slow consumers ------------------------------------------------------------------------------------------


async def test_a_client_that_stops_reading_overflows_only_its_own_buffer_and_is_closed(key):
    valve = Valve()
    with stomp_settings(outbound_buffer_size=4096):
        healthy = await connected(key)
        stuck = StompTestClient(key, app=valve.app())
        assert (await stuck.connect()).command == "CONNECTED"
        await subscribe(healthy, "/topic/flood")
        await subscribe(stuck, "/topic/flood")
        hub = await get_hub()
        valve.open.clear()
        for n in range(100):
            await apush("/topic/flood", f"{n:03d}" + "x" * 100)
            await asyncio.sleep(0)
        assert hub.stats["slow_consumers"] == 1
        assert len(hub.topics["/topic/flood"]) == 1  # only the healthy subscriber is left
        bodies = [(await healthy.receive()).body[:3] for _ in range(100)]
        assert bodies == [f"{n:03d}".encode() for n in range(100)]
        valve.open.set()
        assert (await stuck.receive()).command == "MESSAGE"  # the one that was on its way
        error = await expect_error(stuck, "slow consumer", 1008)
        assert b"4096 bytes" in error.body
    await healthy.close()


async def test_one_message_larger_than_the_buffer_reaches_a_client_that_has_read_everything_before(key):
    valve = Valve()
    with stomp_settings(outbound_buffer_size=4096):
        client = StompTestClient(key, app=valve.app())
        assert (await client.connect()).command == "CONNECTED"
        await subscribe(client, "/topic/big")
        valve.open.clear()  # the big message waits in the pipe: nothing is queued ahead of it
        await apush("/topic/big", "x" * 10_000)
        hub = await get_hub()
        assert hub.stats["slow_consumers"] == 0
        valve.open.set()
        assert (await client.receive()).body == b"x" * 10_000
        await apush("/topic/big", "after")
        assert (await client.receive()).body == b"after"
        await client.close()


async def test_a_send_that_blocks_longer_than_the_send_timeout_closes_the_client(key):
    valve = Valve()
    with stomp_settings(send_timeout=0.3, heartbeat=(0, 0)):  # no heart-beat timer: the hub's watchdog checks
        stuck = StompTestClient(key, app=valve.app())
        assert (await stuck.connect()).command == "CONNECTED"
        await subscribe(stuck, "/topic/slow")
        valve.open.clear()
        await apush("/topic/slow", "stuck in the pipe")
        await asyncio.sleep(0.6)
        hub = await get_hub()
        assert hub.stats["slow_consumers"] == 1
        assert "/topic/slow" not in hub.topics
        valve.open.set()
        frame = await stuck.receive()
        assert frame.command == "MESSAGE"
        error = await expect_error(stuck, "slow consumer", 1008)
    assert b"0.3 seconds" in error.body


# -- across processes: channels-redis ------------------------------------------------------------------------


@pytest.mark.redis
async def test_with_channels_redis_a_broadcast_crosses_the_layer_once_per_process(redis_server, key):
    with override_settings(CHANNEL_LAYERS={"default": layer_config(redis_server.url)}):
        hub = await asyncio.wait_for(get_hub(), 10)  # started here, not under a client's receive timeout
        clients = []
        try:
            for _ in range(5):
                clients.append(await connected(key))
                await subscribe(clients[-1], "/topic/secret-over-redis")
            await apush("/topic/secret-over-redis", "via redis")
            for client in clients:
                assert (await client.receive(timeout=5)).body == b"via redis"
            assert (hub.stats["pushes"], hub.stats["deliveries"]) == (1, 5)
            stored = b"\n".join(redis_server.keys())
            assert b"secret-over-redis" not in stored and key.encode() not in stored
        finally:
            for client in clients:
                await client.close()
            await hub.stop()


async def test_sweep_notices_arriving_during_a_check_make_one_more_check_not_one_each(key, monkeypatch):
    hub = await get_hub()
    release = asyncio.Event()
    reasons: list[str] = []

    async def slow_check(reason):
        reasons.append(reason)
        await release.wait()
        return 0

    monkeypatch.setattr(hub, "end_swept_sessions", slow_check)
    for _ in range(5):
        hub.dispatch({"type": "stomp_push.sessions_swept", "reason": "session expired"})
    await asyncio.sleep(0.05)
    assert reasons == ["session expired"]  # one running; the four notices behind it are one more check
    release.set()
    await asyncio.sleep(0.05)
    assert reasons == ["session expired"] * 2
    hub.dispatch({"type": "stomp_push.sessions_swept", "reason": "session expired"})
    await asyncio.sleep(0.05)
    assert len(reasons) == 3  # idle again: a later notice starts a new check
