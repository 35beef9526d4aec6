"""One of two servers on Redis is killed (SIGKILL): the other server's clients never notice, the dead server's
clients see their socket close and reconnect to the survivor."""

from __future__ import annotations

import asyncio

import pytest

from tests.reliability.clients import StompClient, publish, queued, sequence, stomp_groups
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PER_SERVER = 3


def test_killing_one_server_leaves_the_other_serving_and_its_clients_reconnect(
    redis_server, project_factory, daphne_factory
):
    project = project_factory(redis_server.url, REDIS_LAYER="core")  # reads the core layer's keys
    doomed, survivor = daphne_factory(project), daphne_factory(project)
    alice = survivor.login("alice", DEMO_PASSWORDS["alice"])
    destination = "/topic/kill"

    async def connect(server, count):
        return [await StompClient.open(server, alice.session_key, subscribe=[destination]) for _ in range(count)]

    async def scenario():
        on_doomed, on_survivor = await connect(doomed, PER_SERVER), await connect(survivor, PER_SERVER)
        await asyncio.to_thread(publish, project, destination, 3)
        for client in (*on_doomed, *on_survivor):
            assert sequence(await client.messages(3, 10)) == [0, 1, 2]
        hubs_before = set(stomp_groups(redis_server)["hubs"])
        assert len(hubs_before) == 2

        # Kill it while a broadcast goes on: the survivor's clients get every message, in order.
        publisher = asyncio.create_task(asyncio.to_thread(publish, project, destination, 200, 50))
        assert sequence(await on_survivor[0].messages(20, 15)) == list(range(20))
        doomed.kill()
        for client in on_doomed:
            closed = await client.closed(5)
            assert closed.code == 1006 and closed.error is None  # the TCP connection ended, no closing handshake
        reconnected = await connect(survivor, PER_SERVER)
        await publisher
        assert sequence(await on_survivor[0].messages(180, 15)) == list(range(20, 200))
        for client in on_survivor[1:]:
            assert sequence(await client.messages(200, 15)) == list(range(200))
        # The reconnected clients get what was pushed after their SUBSCRIBE (a suffix of the sequence)...
        for client in reconnected:
            frames = await client.quiet(0.5)
            seqs = sequence(frame.body.decode() for frame in frames)
            if seqs:
                assert seqs == list(range(seqs[0], 200))
        # ...and everything pushed from now on.
        await asyncio.to_thread(publish, project, destination, 5)
        for client in (*on_survivor, *reconnected):
            assert sequence(await client.messages(5, 10)) == list(range(5))

        # The dead hub stays a member of its groups in Redis until group_expiry (channels-redis cannot know),
        # and pushes to those groups pile up in its channel until the message expiry (60 s).
        groups = stomp_groups(redis_server)
        assert set(groups["hubs"]) == hubs_before
        backlog = {hub: queued(redis_server, hub) for hub in hubs_before}
        dead = max(backlog, key=backlog.get)
        assert backlog[dead] >= 5
        stale = sum(dead in members for members in groups.values())
        print(f"\nthe killed server's hub: still in {stale} groups, {backlog[dead]} messages queued for it")
        assert stale == len(groups)  # hubs, the destination's, alice's user and session groups
        for client in (*on_survivor, *reconnected):
            await client.close()

    asyncio.run(scenario())
    assert "Traceback" not in survivor.log(), survivor.log()[-3000:]
