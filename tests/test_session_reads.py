"""Concurrent CONNECTs read their sessions together: one round trip for many connections."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_stomp_push.core.session_reads import SessionReads, session_reads
from tests.stompclient import StompTestClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_fifty_concurrent_connects_read_their_sessions_in_a_few_batches(make_user, login):
    users = [await database_sync_to_async(make_user)(f"u{n}") for n in range(50)]
    keys = [await database_sync_to_async(login)(user) for user in users]
    reads = session_reads()
    batches, read = reads.batches, reads.keys_read
    clients = [StompTestClient(key) for key in keys]
    frames = await asyncio.gather(*(client.connect("1.2") for client in clients))
    assert [f.command for f in frames] == ["CONNECTED"] * 50
    assert sorted(f.headers["user-name"] for f in frames) == sorted(f"u{n}" for n in range(50))
    assert reads.keys_read - read == 50
    assert reads.batches - batches <= 5  # not one read per connection
    for client in clients:
        await client.close()


async def test_a_batch_costs_the_session_table_one_query_and_the_users_one(make_user, login):
    users = [await database_sync_to_async(make_user)(f"v{n}") for n in range(20)]
    keys = [await database_sync_to_async(login)(user) for user in users]

    def read_all() -> int:
        with CaptureQueriesContext(connection) as queries:
            from django_stomp_push.sessions import read_sessions

            states = read_sessions([*keys, "no-such-session-key"])
        assert [states[key].user.username for key in keys] == [f"v{n}" for n in range(20)]
        assert states["no-such-session-key"] is None
        return len(queries)

    assert await database_sync_to_async(read_all)() == 2


async def test_a_failed_read_fails_every_waiter_of_its_batch_and_the_next_read_works(monkeypatch, alice, login):
    from django_stomp_push.core import session_reads as module

    key = await database_sync_to_async(login)(alice)
    reads = SessionReads()

    def broken(keys):
        raise ConnectionError("database down")

    monkeypatch.setattr(module, "read_sessions", broken)
    results = await asyncio.gather(reads.read(key), reads.read("other-key-123"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    monkeypatch.undo()
    state = await reads.read(key)
    assert state is not None and state.user.username == "alice"
