"""Churn soak: a sustained broadcast while ~30% of the clients keep leaving (cleanly or not) and coming back.

Scale with STOMP_SOAK_SECONDS (default 10), STOMP_SOAK_CLIENTS (default 300) and STOMP_SOAK_RATE (pushes per
second, default 10), e.g. ``STOMP_SOAK_CLIENTS=1000 STOMP_SOAK_SECONDS=30 pytest tests/reliability -k soak -s``.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import resource
import time
from collections import Counter

import pytest

from tests.reliability.clients import (
    Closed,
    StompClient,
    group_kinds,
    open_fds,
    publish,
    rss_kib,
    sequence,
    stomp_frame,
    stomp_groups,
    tcp_connections,
)
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SECONDS = float(os.environ.get("STOMP_SOAK_SECONDS", "10"))
CLIENTS = int(os.environ.get("STOMP_SOAK_CLIENTS", "300"))
RATE = float(os.environ.get("STOMP_SOAK_RATE", "10"))
CHURNING = 0.3
#: At most this many connections being opened at once. The server opens about 40 a second on a loaded 2-core
#: machine (two database reads each, in asgiref's one sync thread) and daphne refuses a handshake its
#: application has not accepted within 5 s: real clients back off; this gate does it for the test's.
OPENING = 10
TOPIC = "/topic/soak"
#: Log lines that must not appear: anything logged at ERROR, tracebacks, asyncio's complaints about tasks.
TROUBLE = re.compile(r" ERROR |Traceback|Task was destroyed|never retrieved|never awaited|slow consumer")


async def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout}s")
        await asyncio.sleep(0.1)


class Churner:
    """Connects, subscribes to the broadcast and to a destination of its own, reads a while, leaves; again."""

    def __init__(self, number: int, server, session_keys: list[str], gate: asyncio.Semaphore, stop: asyncio.Event):
        self.number, self.server, self.session_keys, self.gate, self.stop = number, server, session_keys, gate, stop
        self.rng = random.Random(number)
        self.stats: Counter[str] = Counter()

    async def run(self) -> None:
        generation = 0
        while True:
            generation += 1
            own = f"/topic/own.{self.number}.{generation}"
            async with self.gate:
                if self.stop.is_set():
                    return
                client = await StompClient.open(self.server, self.rng.choice(self.session_keys), subscribe=[TOPIC, own])
            self.stats["connections"] += 1
            frames = await client.quiet(self.rng.uniform(0.3, 2.0))
            seqs = sequence(f.body.decode() for f in frames if f.command == "MESSAGE")
            assert all(f.command == "MESSAGE" and f.headers["destination"] == TOPIC for f in frames), frames[:3]
            if seqs:  # in order, without a gap, from the first message after the SUBSCRIBE
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
            self.stats["messages"] += len(seqs)
            await self.leave(client)

    async def leave(self, client: StompClient) -> None:
        how = self.rng.choice(("disconnect", "close", "abort"))
        self.stats[how] += 1
        if how == "disconnect":  # STOMP DISCONNECT with a receipt, then the server closes
            await client.ws.send(stomp_frame("DISCONNECT", {"receipt": "bye"}))
            try:
                while (await client.frame(5)).command != "RECEIPT":
                    pass
                await client.closed(5)
            except Closed:
                pass
        elif how == "close":  # WebSocket closing handshake
            await client.close()
        else:  # the TCP connection just ends (a crashed client, a lost network)
            await client.abort()


def test_churn_during_a_sustained_broadcast_loses_nothing_and_leaks_nothing(
    redis_server, project_factory, daphne_factory
):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * CLIENTS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * CLIENTS), hard))  # inherited by daphne
    project = project_factory(redis_server.url, REDIS_LAYER="core")  # reads the core layer's keys
    server = daphne_factory(project)
    pid = server.process.pid
    # Survivors and churners use different sessions, so the churners' session groups must go when they do.
    survivor_sessions = [server.login(user, DEMO_PASSWORDS[user]).session_key for user in ("alice", "bob")]
    churner_sessions = [server.login(user, DEMO_PASSWORDS[user]).session_key for user in ("alice", "bob")]
    churners_count = round(CLIENTS * CHURNING)
    survivors_count = CLIENTS - churners_count
    count = int(SECONDS * RATE)
    fds_before, rss_before = open_fds(pid), rss_kib(pid)

    async def scenario():
        gate = asyncio.Semaphore(OPENING)

        async def survivor(number):
            async with gate:
                return await StompClient.open(server, survivor_sessions[number % 2], subscribe=[TOPIC])

        survivors = await asyncio.gather(*(survivor(n) for n in range(survivors_count)))
        stop = asyncio.Event()
        churners = [Churner(n, server, churner_sessions, gate, stop) for n in range(churners_count)]
        churning = [asyncio.create_task(churner.run()) for churner in churners]
        started = time.monotonic()
        received = [asyncio.create_task(client.messages(count, SECONDS + 60)) for client in survivors]
        report = await asyncio.to_thread(publish, project, TOPIC, count, RATE)
        stop.set()
        bodies = await asyncio.gather(*received)
        elapsed = time.monotonic() - started
        await asyncio.gather(*churning)
        for messages in bodies:
            assert sequence(messages) == list(range(count))
        stats = sum((churner.stats for churner in churners), Counter())
        peak_fds, peak_rss = open_fds(pid), rss_kib(pid)

        # Nothing left behind by the churners: only the broadcast's group, the survivors' two sessions, the two
        # users and the hubs group; one member each, this server's hub channel.
        await until(
            lambda: group_kinds(stomp_groups(redis_server)) == {"d": 1, "s": 2, "u": 2, "hubs": 1},
            10,
            f"groups left: {group_kinds(stomp_groups(redis_server))}",
        )
        members = {member for names in stomp_groups(redis_server).values() for member in names}
        assert len(members) == 1, members
        await asyncio.gather(*(client.close() for client in survivors))
        await until(lambda: list(stomp_groups(redis_server)) == ["hubs"], 10, "groups left after the last client")
        assert redis_server.keys() == [b"asgi:group:stomp_push.hubs"]  # no queued or in-flight messages either
        # No client connection is left open in the server; what remains is the redis-py pool, which grew
        # with the concurrent group joins and leaves of the churn (bounded by max_connections).
        await until(lambda: set(tcp_connections(pid)) <= {redis_server.port}, 10, f"{tcp_connections(pid)} left")
        pool = tcp_connections(pid)[redis_server.port]
        print(
            f"\n{CLIENTS} clients ({survivors_count} staying, {churners_count} churning), {count} pushes at "
            f"{RATE:g}/s in {elapsed:.1f}s (publisher {report['seconds']:.1f}s): "
            f"{survivors_count * count + stats['messages']} deliveries checked; churn: {dict(stats)}; "
            f"daphne fds {fds_before} -> {peak_fds} -> {open_fds(pid)} ({pool} to Redis), "
            f"RSS {rss_before // 1024} -> {peak_rss // 1024} -> {rss_kib(pid) // 1024} MiB"
        )

    asyncio.run(scenario())
    trouble = [line for line in server.log().splitlines() if TROUBLE.search(line)]
    assert not trouble, "\n".join(trouble[:20])
