"""A deploy: SIGTERM to a real server process drains it (ERROR "server restarting", 1012, a retry-after spread over
DRAIN_WINDOW) and then lets it exit, on daphne, on uvicorn, and under gunicorn with uvicorn's worker."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path

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
        return await _signal_then_check_the_drain(server, clients, signal.SIGTERM, distinct_delays=10)

    took = asyncio.run(scenario())
    assert server.process.wait(15) is not None  # and then the server shut down as it would have
    assert took < 5, took
    assert "draining: 20 connection(s)" in server.log()


async def _signal_then_check_the_drain(server, clients, signum: int, distinct_delays: int) -> float:
    """Send ``signum`` to the server process and wait for every client's close: each must be a drain's (1012 after
    ERROR "server restarting", reconnect later, a retry-after within the 4 s DRAIN_WINDOW), and the retry-afters
    spread over the window (more than ``distinct_delays`` different values, not one moment). Returns the seconds
    from the signal to the last close."""
    started = time.monotonic()
    server.process.send_signal(signum)
    closes = await asyncio.gather(*(client.closed(10) for client in clients))
    took = time.monotonic() - started
    delays = set()
    for closed in closes:
        assert closed.code == 1012, closed
        assert closed.error.headers["message"] == "server restarting"
        assert closed.error.headers["reconnect"] == "later"
        delays.add(int(closed.error.headers["retry-after"]))
    assert all(0 <= d <= 4000 for d in delays) and len(delays) > distinct_delays, sorted(delays)
    return took


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize(
    "signame",
    [
        "SIGTERM",  # gunicorn's graceful shutdown: the master sends its workers SIGTERM
        "SIGINT",  # gunicorn's quick shutdown: the master sends its workers SIGQUIT
    ],
)
def test_a_signal_to_the_gunicorn_master_drains_every_uvicorn_worker_then_all_exit(
    signame, project_factory, daphne_factory
):
    pytest.importorskip("gunicorn", reason="gunicorn is not installed (it is in the test extra)")
    server = daphne_factory(project_factory(), "gunicorn", STOMP_PUSH_JSON=json.dumps({"DRAIN_WINDOW": 4.0}))
    alice = server.login("alice", DEMO_PASSWORDS["alice"])
    clients_count = 300

    async def scenario():
        opening = asyncio.Semaphore(50)

        async def one() -> StompClient:
            async with opening:
                return await StompClient.open(server, alice.session_key, subscribe=["/topic/news"])

        clients = await asyncio.gather(*(one() for _ in range(clients_count)))
        return await _signal_then_check_the_drain(server, clients, getattr(signal, signame), distinct_delays=100)

    took = asyncio.run(scenario())
    started = time.monotonic()
    assert server.process.wait(15) is not None  # the master exits once its workers have
    exited_after = time.monotonic() - started
    log = server.log()
    workers = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log)]
    assert len(workers) == 2, log[-3000:]
    assert not [pid for pid in workers if _alive(pid)], log[-3000:]
    drained = [int(n) for n in re.findall(r"draining: (\d+) connection\(s\)", log)]
    assert len(drained) == 2 and sum(drained) == clients_count and min(drained) > 0, drained  # both workers
    assert took < 5, took
    assert exited_after < 10, exited_after  # not gunicorn's 30 s graceful timeout, then SIGKILL
    assert "SIGKILL" not in log, log[-3000:]
