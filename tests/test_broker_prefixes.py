"""``BROKER_PREFIXES`` on a real server: a client of a daphne process subscribes to a ``/queue/`` destination and
receives a ``push()`` from another process, the AUTHORIZE hook guards ``/queue/`` destinations like ``/topic/``
ones, and ``/user/queue/...`` still means the user's own destination."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.reliability.clients import StompClient, stomp_frame
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis]

SETTINGS = {
    "BROKER_PREFIXES": ["/topic/", "/queue/"],
    "AUTHORIZE": "tests.queue_hooks.authorize",
    "HANDLER_MODULES": ["demo.stomp"],
}

PUSHES = """
from django.contrib.auth import get_user_model
from django_stomp_push import push, push_to_user
push("/queue/orders", "to every subscriber of /queue/orders")
push_to_user(get_user_model().objects.get(username="alice"), "/queue/orders", "to alice only")
"""


def test_a_queue_destination_is_served_like_a_topic_over_a_real_socket(redis_server, project_factory, daphne_factory):
    project = project_factory(redis_server.url, STOMP_PUSH_JSON=json.dumps(SETTINGS))  # the server's and the pusher's
    server = daphne_factory(project)
    alice = server.login("alice", DEMO_PASSWORDS["alice"])
    bob = server.login("bob", DEMO_PASSWORDS["bob"])

    async def scenario():
        alice_tab = await StompClient.open(server, alice.session_key, subscribe=["/queue/orders", "/user/queue/orders"])
        bob_tab = await StompClient.open(server, bob.session_key, subscribe=["/queue/orders"])
        result = await asyncio.to_thread(project.python, PUSHES)
        assert result.returncode == 0, result.stderr
        alice_frames = [await alice_tab.frame(10), await alice_tab.frame(10)]
        received = sorted((f.headers["subscription"], f.headers["destination"], f.body) for f in alice_frames)
        assert received == [
            ("s0", "/queue/orders", b"to every subscriber of /queue/orders"),
            ("s1", "/user/queue/orders", b"to alice only"),
        ]
        assert [f.body for f in [await bob_tab.frame(10)]] == [b"to every subscriber of /queue/orders"]
        assert await bob_tab.quiet(0.5) == []  # not alice's user message
        # The AUTHORIZE hook is asked about /queue/ destinations too.
        await bob_tab.ws.send(stomp_frame("SUBSCRIBE", {"id": "p", "destination": "/queue/private/alice"}))
        closed = await bob_tab.closed(10)
        assert closed.code == 1008
        assert closed.error is not None
        assert closed.error.headers["message"] == "access denied to /queue/private/alice"
        await alice_tab.close()

    asyncio.run(scenario())
