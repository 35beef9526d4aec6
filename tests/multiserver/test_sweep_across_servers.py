"""expire_push_sessions run as a third process closes expired sessions' connections on both servers."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from tests.multiserver.test_logout_across_servers import stomp_connect, wait_closed
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_sweep_closes_expired_sessions_connections_on_every_server(redis_server, project_factory, daphne_factory):
    project = project_factory(redis_server.url)
    server_a, server_b = daphne_factory(project), daphne_factory(project)
    alice = server_a.login("alice", DEMO_PASSWORDS["alice"])
    bob = server_b.login("bob", DEMO_PASSWORDS["bob"])

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
        (error_a, _), (error_b, _) = await asyncio.gather(wait_closed(alice_on_a, 5), wait_closed(alice_on_b, 5))
        assert "message:session expired" in error_a and "message:session expired" in error_b
        assert alice_on_a.close_code == alice_on_b.close_code == 1008
        assert time.monotonic() - started < 10
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bob_on_a.recv(), 0.3)
        assert bob_on_a.close_code is None
        await bob_on_a.close()

    asyncio.run(scenario())
    with sqlite3.connect(project.db_path) as db:
        keys = {row[0] for row in db.execute("SELECT session_key FROM django_session")}
    assert alice.session_key not in keys and bob.session_key in keys
