"""Concurrent CONNECTs read (and, with an ACTIVITY policy, extend) their sessions together: one round trip for
many connections."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_stomp_push.core.session_batches import SessionReads, session_extensions, session_reads
from django_stomp_push.stomp import Frame
from tests.stompclient import StompTestClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_fifty_concurrent_connects_read_their_sessions_in_a_few_batches(make_user, login):
    users = [await database_sync_to_async(make_user)(f"u{n}") for n in range(50)]
    keys = [await database_sync_to_async(login)(user) for user in users]
    reads = session_reads()
    batches, read = reads.batches, reads.sessions
    clients = [StompTestClient(key) for key in keys]
    frames = await asyncio.gather(*(client.connect("1.2") for client in clients))
    assert [f.command for f in frames] == ["CONNECTED"] * 50
    assert sorted(f.headers["user-name"] for f in frames) == sorted(f"u{n}" for n in range(50))
    assert reads.sessions - read == 50
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
    from django_stomp_push.core import session_batches as module

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


@override_settings(STOMP_PUSH={"ACTIVITY": "frames"})
async def test_fifty_concurrent_subscribes_extend_their_sessions_in_a_few_batches(make_user, login):
    users = [await database_sync_to_async(make_user)(f"x{n}") for n in range(50)]
    keys = [await database_sync_to_async(login)(user) for user in users]
    await database_sync_to_async(Session.objects.filter(session_key__in=keys).update)(
        expire_date=timezone.now() + timedelta(minutes=5)
    )
    extensions = session_extensions()
    batches, extended = extensions.batches, extensions.sessions
    clients = [StompTestClient(key) for key in keys]
    connected_at = timezone.now()
    frames = await asyncio.gather(*(client.connect("1.2") for client in clients))
    assert [f.command for f in frames] == ["CONNECTED"] * 50

    async def subscribe(client: StompTestClient) -> Frame:  # a client frame: activity
        await client.send("SUBSCRIBE", {"id": "0", "destination": "/topic/news", "receipt": "r"})
        return await client.receive()

    assert [f.command for f in await asyncio.gather(*map(subscribe, clients))] == ["RECEIPT"] * 50
    for _ in range(100):  # the extensions run beside the frames
        if extensions.sessions - extended >= 50:
            break
        await asyncio.sleep(0.02)
    assert extensions.sessions - extended == 50
    assert extensions.batches - batches <= 5  # not one UPDATE per connection
    expiries = await database_sync_to_async(
        lambda: list(Session.objects.filter(session_key__in=keys).values_list("expire_date", flat=True))
    )()
    assert len(expiries) == 50
    age = timedelta(seconds=settings.SESSION_COOKIE_AGE)  # (more than the 5 minutes the rows were left with)
    assert all(connected_at + age <= expiry <= timezone.now() + age for expiry in expiries)
    for client in clients:
        await client.close()


def _sessions_with(login, users, age=None, absolute=None) -> list[str]:
    keys = [login(user) for user in users]
    for key in keys:
        store = SessionStore(key)
        store.set_expiry(absolute if absolute is not None else age)
        store.save()
    return keys


def test_a_batch_of_extensions_updates_each_age_once_and_never_revives_a_session(make_user, login):
    from django_stomp_push.sessions import extend_sessions, read_sessions

    users = [make_user(f"y{n}") for n in range(12)]
    hour = _sessions_with(login, users[:5], age=3600)
    day = _sessions_with(login, users[5:8], age=86400)
    absolute = _sessions_with(login, users[8:10], absolute=timezone.now() + timedelta(minutes=5))
    deleted, expired = _sessions_with(login, users[10:12], age=3600)
    states = read_sessions([*hour, *day, *absolute, deleted, expired])
    Session.objects.filter(session_key=deleted).delete()
    Session.objects.filter(session_key=expired).update(expire_date=timezone.now() - timedelta(seconds=1))

    before = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        extended = extend_sessions(states.values())
    after = timezone.now()
    for key, age in [*((k, 3600) for k in hour), *((k, 86400) for k in day)]:
        assert before + timedelta(seconds=age) <= extended[key] <= after + timedelta(seconds=age)
        assert Session.objects.get(session_key=key).expire_date == extended[key]
    assert [extended[key] for key in [*absolute, deleted, expired]] == [None] * 4
    assert not Session.objects.filter(session_key=deleted).exists()
    assert Session.objects.get(session_key=expired).expire_date < timezone.now()
    # one UPDATE per age; the hour's also updated fewer rows than keys (the deleted and the expired one), so one
    # SELECT of the rows with the new expiry says which
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE", "SELECT", "UPDATE"]
