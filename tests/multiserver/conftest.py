"""Two real daphne processes of the test project on one real Redis, and STOMP clients bound to sessions."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
import websockets

from tests.servers import DEMO_PASSWORDS, DaphneServer, HttpSession, Project


@dataclass
class TwoServers:
    project: Project
    a: DaphneServer
    b: DaphneServer

    def login(self, server: DaphneServer, username: str) -> HttpSession:
        return server.login(username, DEMO_PASSWORDS[username])


@pytest.fixture
def two_servers(redis_server, project_factory, daphne_factory, redis_layer) -> TwoServers:
    project = project_factory(redis_server.url, REDIS_LAYER=redis_layer)
    return TwoServers(project, daphne_factory(project), daphne_factory(project))


async def stomp_connect(server: DaphneServer, session_key: str | None):
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


async def assert_all_ended(connections, message: str, timeout: float = 5) -> None:
    """Every connection gets ERROR ``message`` and close 1008 with ``message`` as the reason."""
    results = await asyncio.gather(*(wait_closed(ws, timeout) for ws in connections))
    for ws, (error, _) in zip(connections, results, strict=True):
        assert f"message:{message}" in error, error
        assert (ws.close_code, ws.close_reason) == (1008, message)


async def assert_untouched(ws) -> None:
    """``ws`` is still open and got nothing (a heart-beat from the client is answered by nothing)."""
    await ws.send("\n")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), 0.3)
    assert ws.close_code is None
    await ws.close()
