"""Two real daphne processes on one real Redis: pushes from a third process reach the subscribers on both servers,
and a user's messages reach only that user's connections, wherever they are."""

from __future__ import annotations

import asyncio

import pytest

from tests.reliability.clients import StompClient

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PUSHES = """
from django.contrib.auth import get_user_model
from django_stomp_push import push, push_to_user
alice = get_user_model().objects.get(username="alice")
for n in range(5):
    push("/topic/news", f"news {n}")
    push_to_user(alice, "/queue/notices", f"for alice {n}")
"""


def test_pushes_and_user_messages_from_another_process_reach_both_servers(two_servers):
    alice = two_servers.login(two_servers.a, "alice")
    bob = two_servers.login(two_servers.b, "bob")

    async def scenario():
        subscriptions = ["/topic/news", "/user/queue/notices"]
        alice_on_a = await StompClient.open(two_servers.a, alice.session_key, subscribe=subscriptions)
        alice_on_b = await StompClient.open(two_servers.b, alice.session_key, subscribe=subscriptions)
        bob_on_a = await StompClient.open(two_servers.a, bob.session_key, subscribe=subscriptions)
        done = await asyncio.to_thread(two_servers.project.python, PUSHES)
        assert done.returncode == 0, done.stderr[-2000:]
        got = {
            name: await client.messages(count, 10)
            for name, client, count in (("alice_a", alice_on_a, 10), ("alice_b", alice_on_b, 10), ("bob", bob_on_a, 5))
        }
        assert await bob_on_a.quiet(0.5) == []  # nothing more: none of alice's messages
        for client in (alice_on_a, alice_on_b, bob_on_a):
            await client.close()
        return got

    got = asyncio.run(scenario())
    for name in ("alice_a", "alice_b"):
        assert [b for b in got[name] if b.startswith("news")] == [f"news {n}" for n in range(5)]
        assert [b for b in got[name] if b.startswith("for alice")] == [f"for alice {n}" for n in range(5)]
    assert got["bob"] == [f"news {n}" for n in range(5)]
