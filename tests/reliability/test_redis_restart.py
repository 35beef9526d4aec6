"""Redis goes away and comes back on the same port (empty: no persistence) while connections are open."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.reliability.clients import StompClient, publish, sequence, wait_for_log
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

REVALIDATE_INTERVAL = 2.0


def test_connections_survive_a_redis_restart_and_pushes_and_closes_resume(
    redis_server, project_factory, daphne_factory
):
    project = project_factory(redis_server.url)
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
            server, r"channel layer 'default' is back after (\d+) failed receives; re-joining groups", 15, log_start
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
