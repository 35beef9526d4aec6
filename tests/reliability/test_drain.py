"""A deploy: SIGTERM to a real server process drains it (ERROR "server restarting", 1012, a retry-after spread over
DRAIN_WINDOW) and then lets it exit, on daphne and on uvicorn."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from tests.reliability.clients import StompClient
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("server_kind", ["daphne", "uvicorn"])
def test_sigterm_drains_every_connection_with_1012_then_the_server_exits(server_kind, project_factory, daphne_factory):
    server = daphne_factory(project_factory(), server_kind, STOMP_PUSH_JSON=json.dumps({"DRAIN_WINDOW": 4.0}))
    alice = server.login("alice", DEMO_PASSWORDS["alice"])

    async def scenario():
        clients = [await StompClient.open(server, alice.session_key, subscribe=["/topic/news"]) for _ in range(20)]
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        closes = await asyncio.gather(*(client.closed(10) for client in clients))
        took = time.monotonic() - started
        delays = set()
        for closed in closes:
            assert closed.code == 1012, closed
            assert closed.error.headers["message"] == "server restarting"
            assert closed.error.headers["reconnect"] == "later"
            delays.add(int(closed.error.headers["retry-after"]))
        assert all(0 <= d <= 4000 for d in delays) and len(delays) > 10  # spread over the window, not one moment
        return took

    took = asyncio.run(scenario())
    assert server.process.wait(15) is not None  # and then the server shut down as it would have
    assert took < 5, took
    assert "draining: 20 connection(s)" in server.log()
