"""Session binding: every engine's logout closes bound connections with ERROR + 1008; expiry and activity."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.sessions.models import Session
from django.test import Client, override_settings
from django.utils import timezone

from django_stomp_push.sessions import extend_session, read_session
from tests.stompclient import Closed, StompTestClient

pytestmark = pytest.mark.django_db(transaction=True)

ENGINES = {
    "db": {"SESSION_ENGINE": "django.contrib.sessions.backends.db"},
    "cached_db": {"SESSION_ENGINE": "django.contrib.sessions.backends.cached_db"},
    "cache": {"SESSION_ENGINE": "django.contrib.sessions.backends.cache"},
    "file": {"SESSION_ENGINE": "django.contrib.sessions.backends.file"},
}


def signed_in_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def connected(session_key: str) -> StompTestClient:
    client = StompTestClient(session_key)
    frame = await client.connect()
    assert frame.command == "CONNECTED", frame
    return client


@pytest.fixture
def engine_settings(request, tmp_path):
    overrides = dict(ENGINES[request.param])
    if request.param == "file":
        overrides["SESSION_FILE_PATH"] = str(tmp_path)
    with override_settings(**overrides):
        yield request.param


@pytest.mark.parametrize("engine_settings", list(ENGINES), indirect=True)
async def test_logout_closes_every_bound_connection_with_1008_and_spares_other_users(engine_settings, alice, bob):
    alice_http = await database_sync_to_async(signed_in_client)(alice)
    bob_http = await database_sync_to_async(signed_in_client)(bob)
    alice_key = alice_http.cookies["sessionid"].value
    tab1, tab2 = await connected(alice_key), await connected(alice_key)
    bob_tab = await connected(bob_http.cookies["sessionid"].value)

    await database_sync_to_async(alice_http.logout)()

    for tab in (tab1, tab2):
        error, code = await tab.receive_error()
        assert error.headers["message"] == "logged out"
        assert code == 1008
    assert await bob_tab.nothing_received(0.3)
    await bob_tab.close()


async def test_deleting_the_session_row_closes_with_session_ended(alice):
    http = await database_sync_to_async(signed_in_client)(alice)
    key = http.cookies["sessionid"].value
    tab = await connected(key)
    await database_sync_to_async(Session.objects.filter(session_key=key).delete)()
    error, code = await tab.receive_error()
    assert (error.headers["message"], code) == ("session ended", 1008)


async def test_login_key_rotation_closes_connections_of_the_old_key(alice, bob):
    http = await database_sync_to_async(signed_in_client)(alice)
    old_key = http.cookies["sessionid"].value
    tab = await connected(old_key)
    await database_sync_to_async(http.force_login)(bob)  # login() cycles the key: the old row is deleted
    assert http.cookies["sessionid"].value != old_key
    error, code = await tab.receive_error()
    assert code == 1008 and error.headers["message"] in ("session ended", "logged out")


async def test_a_connection_without_a_valid_session_is_refused(alice):
    client = StompTestClient("not-a-real-session-key")
    error = await client.connect()
    assert error.command == "ERROR" and error.headers["message"] == "no valid session"
    with pytest.raises(Closed) as closed:
        await client.receive()
    assert closed.value.code == 1008


@override_settings(SESSION_COOKIE_AGE=2, STOMP_PUSH={"ACTIVITY": "none"})
async def test_an_expiring_session_closes_its_connection_within_a_second_without_any_request(alice):
    http = await database_sync_to_async(signed_in_client)(alice)
    key = http.cookies["sessionid"].value
    expires_at = (await database_sync_to_async(Session.objects.get)(session_key=key)).expire_date
    tab = await connected(key)
    error, code = await tab.receive_error(timeout=5)
    late = time.time() - expires_at.timestamp()
    assert (error.headers["message"], code) == ("session expired", 1008)
    assert 0 <= late < 1.0, f"closed {late:.3f}s after expiry"


@override_settings(SESSION_COOKIE_AGE=2, STOMP_PUSH={"ACTIVITY": "frames", "TOUCH_INTERVAL": 0.5})
async def test_with_the_activity_policy_a_client_that_keeps_sending_outlives_the_original_expiry(alice):
    http = await database_sync_to_async(signed_in_client)(alice)
    key = http.cookies["sessionid"].value
    tab = await connected(key)
    started = time.monotonic()
    while time.monotonic() - started < 4.0:  # twice the session age
        await tab.send("SUBSCRIBE", {"id": f"s{time.monotonic()}", "destination": "/topic/keepalive"})
        await asyncio.sleep(0.4)
    assert await tab.nothing_received(0.1)
    row = await database_sync_to_async(Session.objects.get)(session_key=key)
    assert row.expire_date > timezone.now()
    await tab.close()


@override_settings(SESSION_COOKIE_AGE=2, STOMP_PUSH={"ACTIVITY": "frames+heartbeats", "TOUCH_INTERVAL": 0.5})
async def test_heartbeats_extend_the_session_when_the_policy_says_so(alice):
    http = await database_sync_to_async(signed_in_client)(alice)
    tab = await connected(http.cookies["sessionid"].value)
    started = time.monotonic()
    while time.monotonic() - started < 4.0:
        await tab.send_raw("\n")
        await asyncio.sleep(0.4)
    assert await tab.nothing_received(0.1)
    await tab.close()


@override_settings(SESSION_COOKIE_AGE=2, STOMP_PUSH={"ACTIVITY": "frames", "TOUCH_INTERVAL": 0.5})
async def test_heartbeats_alone_do_not_extend_the_session_under_the_frames_policy(alice):
    http = await database_sync_to_async(signed_in_client)(alice)
    tab = await connected(http.cookies["sessionid"].value)
    for _ in range(6):
        await tab.send_raw("\n")
        await asyncio.sleep(0.5)
        if tab.communicator.output_queue.qsize():
            break
    error, code = await tab.receive_error(timeout=3)
    assert (error.headers["message"], code) == ("session expired", 1008)


def test_extending_a_deleted_session_does_not_resurrect_it(alice):
    http = signed_in_client(alice)
    key = http.cookies["sessionid"].value
    state = read_session(key)
    Session.objects.filter(session_key=key).delete()
    assert extend_session(state) is None
    assert not Session.objects.filter(session_key=key).exists()


def test_extending_an_expired_session_does_not_revive_it(alice):
    http = signed_in_client(alice)
    key = http.cookies["sessionid"].value
    state = read_session(key)
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert extend_session(state) is None
    assert Session.objects.get(session_key=key).expire_date < timezone.now()


def test_a_session_with_an_absolute_expiry_is_never_extended(alice):
    http = signed_in_client(alice)
    session = http.session
    absolute = timezone.now() + timedelta(minutes=5)
    session.set_expiry(absolute)
    session.save()
    state = read_session(session.session_key)
    assert state.max_age is None
    assert extend_session(state) is None
    assert abs((Session.objects.get(session_key=session.session_key).expire_date - absolute).total_seconds()) < 1


@override_settings(SESSION_COOKIE_AGE=60, STOMP_PUSH={"EXPIRY_NOTICE": 59.5})
async def test_expiring_soon_notice_arrives_on_the_session_destination(alice):
    http = await database_sync_to_async(signed_in_client)(alice)
    tab = await connected(http.cookies["sessionid"].value)
    await tab.send("SUBSCRIBE", {"id": "session", "destination": "/user/queue/session"})
    events = []
    for _ in range(2):
        frame = await tab.receive(timeout=3)
        assert frame.headers["destination"] == "/user/queue/session"
        events.append(json.loads(frame.body))
    assert {e["event"] for e in events} == {"status", "expiring"}
    assert all(0 < e["seconds_left"] <= 60 for e in events)
    await tab.close()


@override_settings(STOMP_PUSH={"REVALIDATE_INTERVAL": 0.3})
async def test_revalidation_closes_a_connection_whose_close_event_was_lost(alice):
    http = await database_sync_to_async(signed_in_client)(alice)
    key = http.cookies["sessionid"].value
    tab = await connected(key)
    # A raw delete sends no signal: as if the close broadcast had been dropped by the channel layer.
    doomed = Session.objects.filter(session_key=key)
    await database_sync_to_async(lambda: doomed._raw_delete(doomed.db))()
    error, code = await tab.receive_error(timeout=3)
    assert (error.headers["message"], code) == ("session ended", 1008)


@override_settings(SESSION_COOKIE_AGE=30, STOMP_PUSH={"EXPIRY_NOTICE": 60})
async def test_a_client_that_subscribes_inside_the_notice_window_still_gets_the_expiring_notice(alice):
    http = await database_sync_to_async(signed_in_client)(alice)
    tab = await connected(http.cookies["sessionid"].value)  # 30 s left, EXPIRY_NOTICE 60 s: already "expiring"
    await tab.send("SUBSCRIBE", {"id": "session", "destination": "/user/queue/session"})
    events = [json.loads((await tab.receive()).body)["event"] for _ in range(2)]
    await tab.close()
    assert events == ["status", "expiring"]


def test_an_expired_file_session_reads_as_gone_and_is_not_recreated(alice, tmp_path, settings):
    import os

    from django.contrib.sessions.backends.file import SessionStore as FileStore

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.file"
    settings.SESSION_FILE_PATH = str(tmp_path)
    store = FileStore()
    store["x"] = 1
    store.create()
    path = tmp_path / (settings.SESSION_COOKIE_NAME + store.session_key)
    os.utime(path, (0, 0))  # last modified in 1970
    assert read_session(store.session_key) is None
    assert os.listdir(tmp_path) == []  # Django's load() removed it; nothing was created in its place


def test_a_forged_signed_cookie_is_no_valid_session(settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    assert read_session("garbage-not-signed") is None


@override_settings(STOMP_PUSH={"REVALIDATE_INTERVAL": 0.3})
async def test_a_password_change_closes_the_other_sessions_connections_at_revalidation(alice):
    other_device = await database_sync_to_async(signed_in_client)(alice)
    tab = await connected(other_device.cookies["sessionid"].value)

    def change_password():
        alice.set_password("a-new-password")
        alice.save()

    await database_sync_to_async(change_password)()
    error, code = await tab.receive_error(timeout=3)
    assert (error.headers["message"], code) == ("session ended", 1008)


@pytest.mark.parametrize("engine_settings", ["db", "cached_db"], indirect=True)
async def test_after_a_sweep_each_hub_ends_the_connections_whose_session_row_is_gone_or_expired(
    engine_settings, alice, bob, make_user
):
    from django_stomp_push.push import asessions_swept

    carol = await database_sync_to_async(make_user)("carol")
    keys = {}
    for user in (alice, bob, carol):
        keys[user.username] = (await database_sync_to_async(signed_in_client)(user)).cookies["sessionid"].value
    alice_tabs = [await connected(keys["alice"]), await connected(keys["alice"])]
    bob_tab, carol_tab = await connected(keys["bob"]), await connected(keys["carol"])
    # Behind the connections' backs (no signal; their expiry timers are armed for two weeks): alice's row is
    # deleted as the sweep deletes, bob's has expired and awaits the next sweep, carol's is live.
    gone = Session.objects.filter(session_key=keys["alice"])
    await database_sync_to_async(lambda: gone._raw_delete(gone.db))()
    await database_sync_to_async(Session.objects.filter(session_key=keys["bob"]).update)(
        expire_date=timezone.now() - timedelta(seconds=1)
    )

    await asessions_swept()

    for tab in (*alice_tabs, bob_tab):
        error, code = await tab.receive_error(timeout=3)
        assert (error.headers["message"], code) == ("session expired", 1008)
    assert await carol_tab.nothing_received(0.3)
    await carol_tab.close()
