"""Redis hangs (SIGSTOP: the port still accepts connections, nothing answers) while a session is logged out.

The request path waits at most ``LAYER_TIMEOUT`` for the channel layer: a logout returns at once and its close is
kept and delivered once Redis answers again; a push from another process fails with TimeoutError.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from tests.reliability.clients import StompClient, wait_for_log
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LAYER_TIMEOUT = 1.0
# Long enough that no revalidation of the session store can be what closes the connection.
REVALIDATE_INTERVAL = 60

# A push from a separate Django process; prints how it ended and how long push() took.
PUSH = """
import json, time
from django_stomp_push import push

started = time.monotonic()
try:
    push("/topic/hung", "x")
    outcome = "delivered"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started}))
"""


def timed(call, *args):
    started = time.monotonic()
    try:
        result = call(*args)
    except Exception as exc:  # e.g. urllib's 10 s timeout: reported by the assertion, not as an error
        result = exc
    return result, time.monotonic() - started


def test_a_logout_during_a_redis_hang_returns_at_once_and_its_close_arrives_when_redis_answers(
    redis_server, project_factory, daphne_factory, redis_layer
):
    settings = {"LAYER_TIMEOUT": LAYER_TIMEOUT, "REVALIDATE_INTERVAL": REVALIDATE_INTERVAL}
    project = project_factory(redis_server.url, REDIS_LAYER=redis_layer, STOMP_PUSH_JSON=json.dumps(settings))
    server = daphne_factory(project)
    alice = server.login("alice", DEMO_PASSWORDS["alice"])

    async def scenario():
        client = await StompClient.open(server, alice.session_key, subscribe=["/topic/hung"])
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            status, seconds = await asyncio.to_thread(timed, alice.logout)
            print(f"\nlogout during the hang: {status!r} after {seconds:.2f}s")
            assert status == 200 and seconds < LAYER_TIMEOUT + 2

            pushed = await asyncio.to_thread(project.python, PUSH, 90)
            assert pushed.returncode == 0, pushed.stderr[-2000:]
            report = json.loads(pushed.stdout.strip().splitlines()[-1])
            print(f"push during the hang: {report['outcome']} after {report['seconds']:.2f}s")
            assert report["outcome"].startswith("TimeoutError") and "LAYER_TIMEOUT" in report["outcome"]
            assert report["seconds"] < LAYER_TIMEOUT + 1

            assert await client.quiet(0.5) == []  # nothing can reach the connection while Redis hangs
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        closed = await client.closed(10)
        print(f"closed {time.monotonic() - resumed:.2f}s after Redis answered again")
        assert closed.code == 1008 and closed.error.headers["message"] == "logged out", closed
        # One line in the server's log for the late broadcast, none for each wait.
        await wait_for_log(server, r"broadcast a session end \(logged out\) after [\d.]+ s, at attempt \d+", 5)
        assert server.log().count("session end (logged out)") == 1, server.log()[-3000:]

    asyncio.run(scenario())
