"""The session binding on its own: what it tells the connection, driven by the real session store."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.sessions.models import Session
from django.utils import timezone

from django_stomp_push.conf import build_config
from django_stomp_push.core.binding import SessionBinding
from django_stomp_push.core.timers import Timers
from django_stomp_push.sessions import read_session

pytestmark = pytest.mark.django_db(transaction=True)


class Connection:
    """What the binding calls back: ``end(reason)`` and ``notify(body)``."""

    def __init__(self) -> None:
        self.ended: list[str] = []
        self.notices: list[dict] = []

    def end(self, reason: str) -> None:
        self.ended.append(reason)

    def notify(self, body: dict) -> int:
        self.notices.append(body)
        return 1


async def bound(key: str, **settings) -> tuple[SessionBinding, Connection, Timers]:
    connection = Connection()
    timers = Timers(asyncio.get_running_loop())
    config = build_config({name.upper(): value for name, value in settings.items()})
    binding = SessionBinding(timers, config, connection.end, connection.notify, "test")
    binding.start(await database_sync_to_async(read_session)(key))
    return binding, connection, timers


async def set_expiry(key: str, seconds: float) -> None:
    expires = timezone.now() + timedelta(seconds=seconds)
    await database_sync_to_async(Session.objects.filter(session_key=key).update)(expire_date=expires)


async def until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)


async def test_a_session_that_expires_ends_the_connection_at_its_expiry_with_no_request(alice, login):
    key = await database_sync_to_async(login)(alice)
    await set_expiry(key, 0.3)
    _binding, connection, timers = await bound(key)
    await until(lambda: connection.ended)
    assert connection.ended == ["session expired"]
    timers.cancel_all()


async def test_a_deleted_session_ends_the_connection_at_revalidation(alice, login):
    key = await database_sync_to_async(login)(alice)
    _binding, connection, timers = await bound(key, revalidate_interval=0.2)
    await database_sync_to_async(Session.objects.filter(session_key=key).delete)()
    await until(lambda: connection.ended)
    assert connection.ended == ["session ended"]
    timers.cancel_all()


async def test_activity_extends_the_session_once_per_touch_interval(alice, login):
    key = await database_sync_to_async(login)(alice)
    await set_expiry(key, 60)
    binding, connection, timers = await bound(key, activity="frames", touch_interval=60.0)
    before = binding.state.expires_at
    binding.activity()
    await until(lambda: binding.state.expires_at != before)
    extended = binding.state.expires_at
    binding.activity()  # within the touch interval: nothing more
    await asyncio.sleep(0.2)
    assert binding.state.expires_at == extended and extended > before
    assert connection.notices[-1]["event"] == "status"
    timers.cancel_all()


async def test_the_expiring_notice_comes_once_the_notice_window_begins(alice, login):
    key = await database_sync_to_async(login)(alice)
    await set_expiry(key, 1.5)
    _binding, connection, timers = await bound(key, expiry_notice=1.0)
    assert connection.notices == []
    await until(lambda: connection.notices)
    assert connection.notices[0]["event"] == "expiring" and connection.notices[0]["seconds_left"] <= 1
    await until(lambda: connection.ended)
    assert connection.ended == ["session expired"]
    timers.cancel_all()
