"""Mass departures: thousands of channel-layer group leaves at once must not starve anyone else of Redis.

Six clients with the most subscriptions a connection may hold (MAX_SUBSCRIPTIONS, 256) crash at the same moment
while 50 other clients subscribe: every dropped topic is a group the server's hub has to leave. The leaves go
through the hub's bounded membership path, so the 50 get every RECEIPT, pushes still reach them, the groups
return to what the survivors need, and the redis-py pool stays small.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from tests.reliability.clients import (
    Closed,
    StompClient,
    group_kinds,
    publish,
    sequence,
    stomp_frame,
    stomp_groups,
    tcp_connections,
)
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

HEAVY_CLIENTS = 6
TOPICS_EACH = 256  # the default MAX_SUBSCRIPTIONS
INNOCENT_CLIENTS = 50
#: topics each innocent client subscribes to, one after another, while the heavy clients' leaves run
INNOCENT_TOPICS = 4
SHARED = "/topic/innocent"
#: At most this many connections being opened at once (daphne refuses a handshake not accepted within 5 s).
OPENING = 10
TROUBLE = re.compile(r" ERROR |Traceback|Task was destroyed|never retrieved|never awaited|MaxConnections")


async def subscribe_all(client: StompClient, destinations: list[str], timeout: float = 60) -> None:
    """SUBSCRIBE to every destination without waiting in between, then read every RECEIPT."""
    for index, destination in enumerate(destinations):
        await client.ws.send(stomp_frame("SUBSCRIBE", {"id": f"h{index}", "destination": destination, "receipt": "r"}))

    async def receipts() -> None:
        for _ in destinations:
            frame = await client._next()
            assert frame.command == "RECEIPT", frame

    await asyncio.wait_for(receipts(), timeout)


async def until(condition, timeout: float, what) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what()} after {timeout}s")
        await asyncio.sleep(0.1)


def test_a_mass_drop_of_subscribed_clients_leaves_its_groups_without_failing_anyone_else(
    redis_server, project_factory, daphne_factory
):
    project = project_factory(redis_server.url, REDIS_LAYER="core")  # reads the core layer's keys
    server = daphne_factory(project)
    pid = server.process.pid
    innocent_key = server.login("alice", DEMO_PASSWORDS["alice"]).session_key
    heavy_key = server.login("bob", DEMO_PASSWORDS["bob"]).session_key

    async def scenario():
        gate = asyncio.Semaphore(OPENING)

        async def innocent() -> StompClient:
            async with gate:
                return await StompClient.open(server, innocent_key, subscribe=[SHARED])

        innocents = await asyncio.gather(*(innocent() for _ in range(INNOCENT_CLIENTS)))
        baseline = group_kinds(stomp_groups(redis_server))
        assert baseline == {"hubs": 1, "s": 1, "u": 1, "d": 1}, baseline

        heavy = [await StompClient.open(server, heavy_key) for _ in range(HEAVY_CLIENTS)]
        await asyncio.gather(
            *(
                subscribe_all(client, [f"/topic/heavy.{n}.{t}" for t in range(TOPICS_EACH)])
                for n, client in enumerate(heavy)
            )
        )
        loaded = group_kinds(stomp_groups(redis_server))
        assert loaded["d"] == 1 + HEAVY_CLIENTS * TOPICS_EACH, loaded

        # -- the drop, and the innocent subscribers at the same moment ----------------------------------------
        async def subscribe_meanwhile(number: int, client: StompClient) -> BaseException | None:
            try:
                for t in range(INNOCENT_TOPICS):
                    await client.subscribe(f"/topic/innocent.{number}.{t}", f"i{t}", timeout=20)
            except (Closed, AssertionError, asyncio.TimeoutError) as error:
                return error
            return None

        started = time.monotonic()
        await asyncio.gather(*(client.abort() for client in heavy))
        results = await asyncio.gather(*(subscribe_meanwhile(n, c) for n, c in enumerate(innocents)))
        errors = [error for error in results if error is not None]
        subscribed = time.monotonic() - started

        # The groups of the dropped topics (and bob's session and user) are left; those the innocents need stay.
        expected = {"hubs": 1, "s": 1, "u": 1, "d": 1 + INNOCENT_CLIENTS * INNOCENT_TOPICS}
        try:
            await until(
                lambda: group_kinds(stomp_groups(redis_server)) == expected,
                30,
                lambda: f"groups {group_kinds(stomp_groups(redis_server))} instead of {expected}",
            )
        finally:
            print(
                f"\n{HEAVY_CLIENTS}x{TOPICS_EACH} topics dropped while {INNOCENT_CLIENTS} clients subscribed to "
                f"{INNOCENT_TOPICS} each ({subscribed:.1f}s): {len(errors)} failed "
                f"({sorted({str(e)[:60] for e in errors})[:3]}); groups left {time.monotonic() - started:.1f}s "
                f"after the drop: {group_kinds(stomp_groups(redis_server))}; "
                f"daphne's connections to Redis: {tcp_connections(pid)[redis_server.port]}"
            )
        assert not errors
        members = {member for names in stomp_groups(redis_server).values() for member in names}
        assert len(members) == 1, members  # every group has this server's hub channel as its only member

        # Pushes still reach every innocent client, on the shared topic and on the ones subscribed during the drop.
        await asyncio.to_thread(publish, project, SHARED, 3)
        await asyncio.to_thread(publish, project, f"/topic/innocent.7.{INNOCENT_TOPICS - 1}", 1)
        for number, client in enumerate(innocents):
            assert sequence(await client.messages(3 + (number == 7), 10))[:3] == [0, 1, 2]
        # The redis-py pool never grew past the hub's bound on concurrent membership commands (plus the
        # receive loop's blocking read and a few sends).
        assert tcp_connections(pid)[redis_server.port] < 64, tcp_connections(pid)
        await asyncio.gather(*(client.close() for client in innocents))

    asyncio.run(scenario())
    trouble = [line for line in server.log().splitlines() if TROUBLE.search(line)]
    assert not trouble, "\n".join(trouble[:20])
