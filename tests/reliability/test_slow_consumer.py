"""A client that stops reading is closed on its own; the server's memory stays bounded and the readers get
every message, in order."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest

from tests.reliability.clients import StalledClient, StompClient, publish, rss_kib, sequence, wait_for_log
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MESSAGES = 1000
BODY = 32 * 1024  # 1000 x 32 KiB: 32 MiB pushed to each subscriber, 64 times the 512 KiB outbound limit
RATE = 200  # per second: a pace the readers (Python, on a shared 2-core machine) keep up with
READERS = 3
#: Peak RSS growth allowed while the data goes through: half of what the stalled client alone would hold if
#: nothing bounded its buffer (measured: about 1 MiB).
RSS_GROWTH_LIMIT_KIB = 16 * 1024


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.baseline = self.peak = rss_kib(pid)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))


def test_a_stalled_subscriber_is_closed_while_the_others_receive_everything(
    redis_server, project_factory, daphne_factory
):
    project = project_factory(redis_server.url)
    server = daphne_factory(project)
    alice = server.login("alice", DEMO_PASSWORDS["alice"])
    destination = "/topic/firehose"

    async def scenario():
        readers = [await StompClient.open(server, alice.session_key, subscribe=[destination]) for _ in range(READERS)]
        stalled = StalledClient(server, alice.session_key)
        stalled.connect_and_subscribe(destination)
        rss = PeakRss(server.process.pid)
        rss.start()
        log_start = len(server.log())
        started = time.monotonic()
        publisher = asyncio.create_task(asyncio.to_thread(publish, project, destination, MESSAGES, RATE, BODY))
        received = await asyncio.gather(*(reader.messages(MESSAGES, 50) for reader in readers))
        elapsed = time.monotonic() - started
        await publisher
        rss.done.set()
        rss.join()

        for bodies in received:
            assert sequence(bodies) == list(range(MESSAGES))
        growth = rss.peak - rss.baseline
        print(
            f"\n{READERS} readers x {MESSAGES} x {BODY // 1024} KiB in {elapsed:.1f}s; daphne RSS "
            f"{rss.baseline / 1024:.0f} MiB -> peak {rss.peak / 1024:.0f} MiB (+{growth / 1024:.1f} MiB)"
        )
        assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB"

        found = await wait_for_log(server, r"closing slow consumer (\S+): (.*)", 5, since=log_start)
        assert "bytes queued" in found.group(2)
        assert set(re.findall(r"closing slow consumer (\S+):", server.log())) == {found.group(1)}
        # The server ends the TCP connection (after autobahn's 1 s closing handshake timeout: a reset).
        read, how = await asyncio.to_thread(stalled.drain, 10)
        stalled.close()
        print(f"stalled socket: {read} bytes were left to read, then {how}")
        for reader in readers:
            assert reader.ws.close_code is None  # still connected
            await reader.close()

    asyncio.run(scenario())
