"""django_stomp_push.testing: the STOMP test client users run against the real endpoint, in-process, on the
in-memory channel layer (tests/settings.py)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import TestCase

from django_stomp_push import aend_session, apush, apush_to_user
from django_stomp_push.routing import stomp_application
from django_stomp_push.testing import (
    ConnectionClosed,
    StompCommunicator,
    asession_key_for,
    session_key_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_signed_in_client_connects_subscribes_and_receives_pushes(alice):
    async with StompCommunicator(session_key=await asession_key_for(alice)) as client:
        sub_id = await client.subscribe("/topic/prices")
        await client.subscribe("/user/queue/notices", id="notices")

        await apush("/topic/prices", {"EURUSD": 1.0842}, headers={"source": "test"})
        message = await client.receive_message("/topic/prices")
        assert message.json() == {"EURUSD": 1.0842}
        assert (message.subscription, message.headers["source"]) == (sub_id, "test")
        assert message.headers["content-type"] == "application/json"

        await apush_to_user(alice, "/queue/notices", "Saved.")
        notice = await client.receive_message("/user/queue/notices")
        assert (notice.subscription, notice.text) == ("notices", "Saved.")
        await client.assert_nothing_received()


async def test_the_connected_frame_names_the_user_and_the_version(alice):
    client = StompCommunicator(session_key=await asession_key_for(alice))
    try:
        connected = await client.connect(version="1.1", heart_beat="0,0")
        assert (connected.headers["user-name"], connected.headers["version"]) == ("alice", "1.1")
        assert client.subprotocol == "v12.stomp"
        # STOMP 1.1 escapes ':' and LF in header values; the client reads them back with the negotiated version.
        await client.subscribe("/topic/escaped")
        await apush("/topic/escaped", "x", headers={"note": "a:b\nc"})
        assert (await client.receive_message()).headers["note"] == "a:b\nc"
    finally:
        await client.close()


async def test_a_push_elsewhere_is_nothing_and_a_push_here_is_not(alice):
    async with StompCommunicator(session_key=await asession_key_for(alice)) as client:
        await client.subscribe("/topic/here")
        await apush("/topic/elsewhere", "no")
        await client.assert_nothing_received()
        await apush("/topic/here", "yes")
        with pytest.raises(AssertionError, match="expected nothing, got"):
            await client.assert_nothing_received()
        assert (await client.receive_message("/topic/here")).text == "yes"


async def test_receive_message_fails_on_another_destination_and_on_silence(alice):
    async with StompCommunicator(session_key=await asession_key_for(alice), timeout=0.3) as client:
        await client.subscribe("/topic/a")
        await apush("/topic/a", "1")
        with pytest.raises(AssertionError, match="expected a MESSAGE to /topic/b, got one to /topic/a"):
            await client.receive_message("/topic/b")
        with pytest.raises(AssertionError, match=r"nothing from the server within 0\.3s"):
            await client.receive_message()


async def test_publish_reaches_a_handler_and_its_reply_comes_back(alice):
    async with StompCommunicator(session_key=await asession_key_for(alice)) as client:
        await client.subscribe("/user/queue/reply")
        await client.publish("/app/echo-async", "hi")  # returns after the RECEIPT: the handler has run
        assert (await client.receive_message("/user/queue/reply")).text == "async:hi"
        await client.subscribe("/topic/rooms/lobby")
        await client.publish("/app/rooms/lobby", {"text": "hello"})
        assert (await client.receive_message("/topic/rooms/lobby")).json() == {"text": "hello"}
        await client.publish("/app/echo-async", b"\xff\xfe")  # not UTF-8: sent as a binary WebSocket message
        assert (await client.receive_message("/user/queue/reply")).text == "async:\ufffd\ufffd"


async def test_a_session_deleted_on_the_server_closes_the_client_with_error_and_1008(alice):
    key = await asession_key_for(alice)
    async with StompCommunicator(session_key=key) as client:
        await database_sync_to_async(Session.objects.filter(session_key=key).delete)()
        error = await client.expect_error("session ended", code=1008)
        assert error.headers["reconnect"] == "never"
        assert (client.close_code, client.close_reason) == (1008, "session ended")


async def test_expect_error_fails_on_another_message_or_code(alice):
    key = await asession_key_for(alice)
    async with StompCommunicator(session_key=key) as client:
        await aend_session(key, "logged out")
        with pytest.raises(AssertionError, match="expected ERROR 'session expired', got 'logged out'"):
            await client.expect_error("session expired")
    async with StompCommunicator(session_key=await asession_key_for(alice)) as client:
        await client.send("SUBSCRIBE", {"id": "x", "destination": "/nowhere"})
        with pytest.raises(ConnectionClosed, match="closed the WebSocket with 1008 'unknown destination /nowhere'"):
            await client.expect_error("unknown destination /nowhere", code=1002)


async def test_a_refused_subscription_fails_the_subscribe_with_the_servers_error(alice):
    async with StompCommunicator(session_key=await asession_key_for(alice)) as client:
        with pytest.raises(AssertionError, match=r"SUBSCRIBE was answered with ERROR .*unknown destination /nowhere"):
            await client.subscribe("/nowhere")
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive()
        assert closed.value.code == 1008


async def test_without_a_session_connect_is_refused():
    client = StompCommunicator()
    try:
        assert await client.open()
        await client.send("CONNECT", {"accept-version": "1.2", "host": "testserver"})
        await client.expect_error("no valid session", code=1008)
        with pytest.raises(AssertionError, match="CONNECT was answered with ERROR"):
            async with StompCommunicator(session_key="no-such-session"):
                pass
    finally:
        await client.close()


async def test_an_anonymous_session_connects_without_a_user():
    async with StompCommunicator(session_key=await asession_key_for()) as client:
        await client.subscribe("/topic/anonymous")
        await apush("/topic/anonymous", "hi")
        assert (await client.receive_message()).text == "hi"


async def test_an_origin_outside_allowed_hosts_is_refused_at_the_handshake(alice):
    client = StompCommunicator(session_key=await asession_key_for(alice), origin="http://evil.example")
    try:
        assert not await client.open()
    finally:
        await client.close()
    with pytest.raises(AssertionError, match="handshake was refused"):
        async with StompCommunicator(session_key=await asession_key_for(alice), origin="http://evil.example"):
            pass


async def test_disconnect_gets_its_receipt_then_a_normal_close(alice):
    client = StompCommunicator(session_key=await asession_key_for(alice))
    await client.connect()
    await client.disconnect()
    assert client.close_code == 1000
    await client.close()


async def test_the_projects_whole_asgi_application_can_be_tested(alice):
    async with StompCommunicator(stomp_application(), session_key=await asession_key_for(alice)) as client:
        await client.subscribe("/topic/through-the-router")
        await apush("/topic/through-the-router", b"\x00\x01")
        assert (await client.receive_message()).body == b"\x00\x01"


def test_session_key_for_creates_a_signed_in_session(alice):
    key = session_key_for(alice)
    session = Session.objects.get(session_key=key).get_decoded()
    assert session["_auth_user_id"] == str(alice.pk)


class UnittestStyle(TestCase):
    """The same client from Django's own test classes (async test methods; TestCase's transaction is fine)."""

    async def test_a_push_to_a_signed_in_user(self):
        user = await get_user_model().objects.acreate(username="grace")
        async with StompCommunicator(session_key=await asession_key_for(user)) as client:
            await client.subscribe("/user/queue/notices")
            await apush_to_user(user, "/queue/notices", {"text": "Saved."})
            message = await client.receive_message("/user/queue/notices")
            self.assertEqual(message.json(), {"text": "Saved."})

    async def test_a_views_push_reaches_the_same_sessions_connection(self):
        user = await get_user_model().objects.acreate(username="grace")
        key = await asession_key_for(user)
        self.async_client.cookies[settings.SESSION_COOKIE_NAME] = key  # one browser: HTTP and STOMP
        async with StompCommunicator(session_key=key) as client:
            await client.subscribe("/user/queue/notices")
            response = await self.async_client.post("/notify/", {"text": "from the view"})  # sync push()
            self.assertEqual(response.status_code, 200)
            message = await client.receive_message("/user/queue/notices")
            self.assertEqual(message.json()["text"], "from the view")

            await self.async_client.post("/accounts/logout/")  # the logout signal ends the session's connections
            await client.expect_error("logged out", code=1008)
