"""Security properties of a real server: cross-site WebSockets are refused, session keys and user names never
reach Redis in clear, and a client that never sends CONNECT is closed."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import websockets

from tests.reliability.clients import StompClient, publish
from tests.servers import DEMO_PASSWORDS, RedisServer

pytestmark = [pytest.mark.slow]

FORGED_ORIGINS = [
    "https://evil.example",
    "http://127.0.0.1.evil.example",  # a look-alike host
    "null",  # sandboxed iframes, file:// pages
    None,  # no Origin header at all
]


def test_cross_site_websockets_are_refused_with_403(project_factory, daphne_factory):
    server = daphne_factory(project_factory())
    alice = server.login("alice", DEMO_PASSWORDS["alice"])
    cookie = {"Cookie": f"sessionid={alice.session_key}"}  # a browser sends it along with any page's request

    async def scenario():
        for origin in FORGED_ORIGINS:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(server.ws_url, origin=origin, additional_headers=cookie, open_timeout=5)
            assert refused.value.response.status_code == 403, origin
        # The same request from the site's own origin is accepted.
        client = await StompClient.open(server, alice.session_key)
        await client.close()

    asyncio.run(scenario())


class Monitor(threading.Thread):
    """Everything Redis executes, with every argument (MONITOR prints binary bytes as \\xNN, text as is)."""

    def __init__(self, redis_server: RedisServer) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", redis_server.port))
        self.sock.sendall(b"MONITOR\r\n")
        self.sock.settimeout(0.1)
        self.output = bytearray()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                break
            self.output += chunk

    def stop(self) -> bytes:
        time.sleep(0.3)  # let the last commands arrive
        self.done.set()
        self.join()
        self.sock.close()
        return bytes(self.output)


PUSH_TO_USER = """
from django.contrib.auth import get_user_model
from django_stomp_push import push_to_user
push_to_user(get_user_model().objects.get(username="alice"), "/queue/notices", "for you")
"""


@pytest.mark.redis
def test_session_keys_and_user_names_never_reach_redis_in_clear(
    redis_server, project_factory, daphne_factory, redis_layer
):
    project = project_factory(redis_server.url, REDIS_LAYER=redis_layer)
    servers = daphne_factory(project), daphne_factory(project)
    alice = servers[0].login("alice", DEMO_PASSWORDS["alice"])
    bob = servers[1].login("bob", DEMO_PASSWORDS["bob"])
    keys = [alice.session_key, bob.session_key]  # (logout forgets alice's)
    secrets = [key.encode() for key in keys] + [b"alice", b"bob"]
    monitor = Monitor(redis_server)
    monitor.start()

    async def scenario():
        alices = [
            await StompClient.open(server, alice.session_key, subscribe=["/topic/news", "/user/queue/notices"])
            for server in servers
        ]
        bobs = [await StompClient.open(server, bob.session_key, subscribe=["/topic/news"]) for server in servers]
        await asyncio.to_thread(publish, project, "/topic/news", 1)
        result = await asyncio.to_thread(project.python, PUSH_TO_USER)
        assert result.returncode == 0, result.stderr
        for client in alices:
            frames = [await client.frame(10), await client.frame(10)]
            assert sorted(f.headers["destination"] for f in frames) == ["/topic/news", "/user/queue/notices"]
        for client in bobs:
            assert (await client.frame(10)).headers["destination"] == "/topic/news"
        while_open = redis_server.dump()

        await asyncio.to_thread(alice.logout)  # the close is broadcast through Redis to both servers
        for client in alices:
            closed = await client.closed(5)
            assert closed.code == 1008 and closed.error.headers["message"] == "logged out"
        after_logout = redis_server.dump()
        for client in bobs:
            await client.close()
        return while_open, after_logout

    while_open, after_logout = asyncio.run(scenario())
    commands = monitor.stop()
    # The monitor saw the traffic, payloads included: group joins, pushes, the session-end broadcast.
    assert b"stomp_push.end_sessions" in commands and b"for you" in commands
    if redis_layer == "core":  # groups are sorted sets
        assert b'"ZADD"' in commands
        assert b"stomp_push.s." in while_open and b"stomp_push.u." in while_open
    else:  # groups are pub/sub channels
        assert b'"SUBSCRIBE"' in commands
        assert b"__group__stomp_push.s." in commands and b"__group__stomp_push.u." in commands
    for secret in secrets:
        for name, seen in (("keys and values", while_open), ("after logout", after_logout), ("commands", commands)):
            assert secret not in seen, f"{secret!r} found in Redis {name}"
    for server in servers:
        assert not any(key in server.log() for key in keys)


def test_a_client_that_never_sends_connect_is_closed_after_connect_timeout(project_factory, daphne_factory):
    server = daphne_factory(project_factory(), STOMP_PUSH_JSON=json.dumps({"CONNECT_TIMEOUT": 0.5}))
    alice = server.login("alice", DEMO_PASSWORDS["alice"])

    async def scenario():
        prompt = await StompClient.open(server, alice.session_key)  # CONNECTs at once: unaffected
        silent = StompClient(
            await websockets.connect(
                server.ws_url,
                subprotocols=["v12.stomp"],
                origin=server.http_url,
                additional_headers={"Cookie": f"sessionid={alice.session_key}"},
            )
        )
        started = time.monotonic()
        closed = await silent.closed(5)
        elapsed = time.monotonic() - started
        assert closed.code == 1008, closed
        assert closed.error.headers["message"] == "CONNECT timeout"
        assert b"no CONNECT frame within 0.5 seconds" in closed.error.body
        assert 0.4 < elapsed < 3, elapsed
        assert await prompt.quiet(0.5) == [] and prompt.ws.close_code is None
        await prompt.close()

    asyncio.run(scenario())
