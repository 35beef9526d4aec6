"""expire_push_sessions run as a third process closes expired sessions' connections on both servers."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from .conftest import assert_all_ended, assert_untouched, stomp_connect

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_sweep_closes_expired_sessions_connections_on_every_server(two_servers):
    project, server_a, server_b = two_servers.project, two_servers.a, two_servers.b
    alice = two_servers.login(server_a, "alice")
    bob = two_servers.login(server_b, "bob")

    async def scenario():
        alice_on_a = await stomp_connect(server_a, alice.session_key)
        alice_on_b = await stomp_connect(server_b, alice.session_key)
        bob_on_a = await stomp_connect(server_a, bob.session_key)
        # Expire alice's session behind the connections' backs: their own timers are armed for 30 minutes.
        with sqlite3.connect(project.db_path) as db:
            db.execute(
                "UPDATE django_session SET expire_date = '2000-01-01 00:00:00' WHERE session_key = ?",
                (alice.session_key,),
            )
        started = time.monotonic()
        result = await asyncio.to_thread(project.manage, "expire_push_sessions", "-v", "2")
        assert result.returncode == 0, result.stderr
        assert "Deleted 1 expired sessions in 1 batches and broadcast their closes" in result.stdout
        await assert_all_ended([alice_on_a, alice_on_b], "session expired")
        assert time.monotonic() - started < 10
        await assert_untouched(bob_on_a)

    asyncio.run(scenario())
    with sqlite3.connect(project.db_path) as db:
        keys = {row[0] for row in db.execute("SELECT session_key FROM django_session")}
    assert alice.session_key not in keys and bob.session_key in keys
