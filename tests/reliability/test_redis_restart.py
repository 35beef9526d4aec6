"""Redis goes away and comes back on the same port (empty: no persistence) while connections are open."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import pytest

from tests.reliability.clients import StompClient, publish, sequence, wait_for_log
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

REVALIDATE_INTERVAL = 2.0


def test_connections_survive_a_redis_restart_and_pushes_and_closes_resume(
    redis_server, project_factory, daphne_factory, redis_layer
):
    project = project_factory(redis_server.url, REDIS_LAYER=redis_layer)
    server = daphne_factory(
        project,
        STOMP_PUSH_HEARTBEAT="500,0",
        STOMP_PUSH_JSON=json.dumps({"REVALIDATE_INTERVAL": REVALIDATE_INTERVAL}),
    )
    alice = server.login("alice", DEMO_PASSWORDS["alice"])
    bob = server.login("bob", DEMO_PASSWORDS["bob"])
    destination = "/topic/restart"

    async def scenario():
        clients = [
            await StompClient.open(server, alice.session_key, heartbeat="0,500", subscribe=[destination])
            for _ in range(2)
        ]
        bob_client = await StompClient.open(server, bob.session_key, heartbeat="0,500", subscribe=[destination])
        await asyncio.to_thread(publish, project, destination, 3)
        for client in (*clients, bob_client):
            assert sequence(await client.messages(3, 10)) == [0, 1, 2]

        # -- the outage --------------------------------------------------------------------------------------
        log_start = len(server.log())
        heartbeats = [client.heartbeats for client in clients]
        outage_started = time.monotonic()
        redis_server.stop()
        await wait_for_log(server, r"channel layer 'default' receive failed", 10, since=log_start)

        # What happens meanwhile: a push from another process fails at the caller...
        failed = await asyncio.to_thread(
            project.python, "from django_stomp_push import push\npush('/topic/restart', 'lost')", 30
        )
        assert failed.returncode != 0 and "ConnectionError" in failed.stderr, failed.stderr[-2000:]
        # ...a logout still succeeds, its broadcast is lost, and the connection's own revalidation closes it.
        assert await asyncio.to_thread(bob.logout) == 200  # (after the redirect to the login page)
        closed = await bob_client.closed(REVALIDATE_INTERVAL + 5)
        assert closed.code == 1008 and closed.error.headers["message"] == "session ended", closed
        await wait_for_log(server, r"could not broadcast a session end \(logged out\)", 5, since=log_start)
        # The connections stay open: the server keeps sending heart-beats (every 0.5 s) and nothing else.
        for client in clients:
            assert await client.quiet(1.0) == []
        outage = time.monotonic() - outage_started
        for client, before in zip(clients, heartbeats, strict=True):
            assert client.ws.close_code is None
            assert client.heartbeats - before >= outage, (client.heartbeats - before, outage)

        # -- recovery ----------------------------------------------------------------------------------------
        redis_server.start()
        recovered = time.monotonic()
        back = await wait_for_log(
            server,
            r"channel layer 'default' is back after (\d+) failed (?:receives|probes); re-joining groups",
            15,
            log_start,
        )
        print(f"\nhub recovered {time.monotonic() - recovered:.1f}s after Redis restarted ({back.group(1)} failures)")
        await asyncio.to_thread(publish, project, destination, 3)
        for client in clients:
            assert sequence(await client.messages(3, 10)) == [0, 1, 2]
        # A session's end after the recovery still closes every bound connection, through Redis: "logged out"
        # is the broadcast's reason (a revalidation would say "session ended").
        await asyncio.to_thread(alice.logout)
        for client in clients:
            closed = await client.closed(5)
            assert closed.code == 1008 and closed.error.headers["message"] == "logged out", closed

    asyncio.run(scenario())


# Pushes "<seq>:<monotonic time issued>" to one destination every ``interval`` seconds from this separate process
# until ``stop_path`` exists, through the outages (a push that raises is recorded as failed, not retried), then
# prints [seq, issued, ok] for every push. Linux's monotonic clock is the same in every process.
STEADY_PUBLISHER = """
import asyncio, json, os, time
from django_stomp_push import apush

destination, stop_path, interval = {destination!r}, {stop_path!r}, {interval}

async def main():
    pushes = []
    while not os.path.exists(stop_path):
        issued = time.monotonic()
        try:
            await apush(destination, f"{{len(pushes)}}:{{issued}}")
            pushes.append((len(pushes), issued, True))
        except Exception:
            pushes.append((len(pushes), issued, False))
        await asyncio.sleep(max(0.0, issued + interval - time.monotonic()))
    print(json.dumps(pushes))

asyncio.run(main())
"""
RESTARTS = 3
#: Redis is down this long at each restart (a process or container restart, not an instant one).
DOWNTIME = 1.5
#: The first push delivered after Redis is back was issued at most this long after it came back.
WINDOW_BOUND = 1.0


def test_pushes_reach_subscribers_again_soon_after_a_redis_restart(
    redis_server, project_factory, daphne_factory, redis_layer, tmp_path
):
    project = project_factory(redis_server.url, REDIS_LAYER=redis_layer)
    server = daphne_factory(project)
    alice = server.login("alice", DEMO_PASSWORDS["alice"])
    destination = "/topic/restart-window"
    stop_path = tmp_path / "stop-publishing"

    async def scenario() -> tuple[list[tuple[float, float]], list[list], dict[int, float]]:
        client = await StompClient.open(server, alice.session_key, subscribe=[destination])
        code = STEADY_PUBLISHER.format(destination=destination, stop_path=str(stop_path), interval=0.02)
        publishing = asyncio.create_task(asyncio.to_thread(project.python, code, 120))
        delivered: dict[int, float] = {}  # seq -> issued
        arrived = asyncio.Event()

        async def collect() -> None:
            while True:
                frame = await client.frame(3600)
                seq, _, issued = frame.body.decode().partition(":")
                delivered[int(seq)] = float(issued)
                arrived.set()

        async def delivered_after(moment: float) -> None:
            while not delivered or max(delivered.values()) <= moment:
                arrived.clear()
                await arrived.wait()

        collecting = asyncio.create_task(collect())
        try:
            await asyncio.wait_for(delivered_after(0), 30)  # the publisher is up and its pushes arrive
            outages = []
            for _ in range(RESTARTS):
                redis_server.stop()
                stopped = time.monotonic()
                await asyncio.sleep(DOWNTIME)
                redis_server.start()  # returns once the new Redis accepts connections
                back = time.monotonic()
                outages.append((stopped, back))
                await asyncio.wait_for(delivered_after(back), 15)
                await asyncio.sleep(0.5)
        finally:
            stop_path.touch()
            result = await publishing
            collecting.cancel()
        assert result.returncode == 0, result.stderr[-3000:]
        await client.close()
        return outages, json.loads(result.stdout.strip().splitlines()[-1]), delivered

    outages, pushes, delivered = asyncio.run(scenario())
    windows, lost = [], []
    for (stopped, back), (next_stop, _) in zip(outages, [*outages[1:], (float("inf"), 0)], strict=True):
        windows.append(min(issued for issued in delivered.values() if issued > back) - back)
        # pushes that returned normally after this outage began (and before the next), yet reached nobody
        lost.append(
            sum(1 for seq, issued, ok in pushes if ok and stopped < issued < next_stop and seq not in delivered)
        )
    print(
        f"\nRedis down {DOWNTIME}s, {RESTARTS} times: first push delivered "
        f"{', '.join(f'{w:.2f}' for w in windows)}s after Redis was back (median {statistics.median(windows):.2f}s); "
        f"pushes that succeeded but reached nobody: {lost}"
    )
    assert max(windows) < WINDOW_BOUND, windows
    # Each restart was noticed by a failing receive (the blocking read's connection is reset), logged once per
    # outage rather than once per retry.
    assert server.log().count("receive failed") == RESTARTS, server.log()[-3000:]
    assert server.log().count("is back after") == RESTARTS, server.log()[-3000:]
