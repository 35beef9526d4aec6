"""Two real daphne processes on one real Redis: a session's end closes its connections on every server."""

from __future__ import annotations

import asyncio
import time

import pytest
import websockets

from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def stomp_connect(server, session_key: str | None):
    headers = {"Cookie": f"sessionid={session_key}"} if session_key else {}
    ws = await websockets.connect(
        server.ws_url, subprotocols=["v12.stomp"], origin=server.http_url, additional_headers=headers
    )
    await ws.send("CONNECT\naccept-version:1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n\x00")
    frame = await asyncio.wait_for(ws.recv(), 5)
    assert frame.startswith("CONNECTED"), frame
    return ws


async def wait_closed(ws, timeout: float) -> tuple[str, float]:
    """Return (the ERROR frame, seconds until the close) once the server closes ``ws``."""
    started = time.monotonic()
    error = ""
    try:
        while True:
            frame = await asyncio.wait_for(ws.recv(), timeout)
            if frame.startswith("ERROR"):
                error = frame
    except websockets.ConnectionClosed:
        pass
    return error, time.monotonic() - started


def test_logout_on_server_b_closes_connections_on_server_a_with_1008(redis_server, project_factory, daphne_factory):
    project = project_factory(redis_server.url)
    server_a, server_b = daphne_factory(project), daphne_factory(project)
    alice = server_b.login("alice", DEMO_PASSWORDS["alice"])
    bob = server_b.login("bob", DEMO_PASSWORDS["bob"])

    async def scenario():
        alice_on_a = await stomp_connect(server_a, alice.session_key)
        alice_on_b = await stomp_connect(server_b, alice.session_key)
        bob_on_a = await stomp_connect(server_a, bob.session_key)
        started = time.monotonic()
        await asyncio.to_thread(alice.logout)
        (error_a, _), (error_b, _) = await asyncio.gather(wait_closed(alice_on_a, 5), wait_closed(alice_on_b, 5))
        elapsed = time.monotonic() - started
        assert "message:logged out" in error_a and "message:logged out" in error_b
        assert alice_on_a.close_code == 1008 and alice_on_b.close_code == 1008
        assert alice_on_a.close_reason == "logged out"
        assert elapsed < 1.0, f"closed after {elapsed:.3f}s"
        # bob's connection on the same server is untouched
        await bob_on_a.send("\n")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bob_on_a.recv(), 0.3)
        assert bob_on_a.close_code is None
        await bob_on_a.close()

    asyncio.run(scenario())
