"""Two real daphne processes on one real Redis: a session's end closes its connections on every server."""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import assert_all_ended, assert_untouched, stomp_connect

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_logout_on_server_b_closes_connections_on_server_a_with_1008(two_servers):
    alice = two_servers.login(two_servers.b, "alice")
    bob = two_servers.login(two_servers.b, "bob")

    async def scenario():
        alice_on_a = await stomp_connect(two_servers.a, alice.session_key)
        alice_on_b = await stomp_connect(two_servers.b, alice.session_key)
        bob_on_a = await stomp_connect(two_servers.a, bob.session_key)
        started = time.monotonic()
        await asyncio.to_thread(alice.logout)
        await assert_all_ended([alice_on_a, alice_on_b], "logged out")
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"closed after {elapsed:.3f}s"
        await assert_untouched(bob_on_a)  # bob's connection on the same server

    asyncio.run(scenario())
