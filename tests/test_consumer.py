"""StompConsumer through a WebSocket: every command, receipts, heart-beats, errors, authorization, sessions, CSRF."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.test import override_settings

from django_stomp_push import apush
from django_stomp_push.stomp import Frame, encode
from tests.stompclient import Closed, StompTestClient

pytestmark = pytest.mark.django_db(transaction=True)

PROTOCOL_ERROR, POLICY_VIOLATION, TOO_BIG, SERVER_ERROR = 1002, 1008, 1009, 1011


# -- helpers shared by the consumer-level test modules ------------------------------------------------------


async def sign_in(user: Any, login: Any) -> str:
    """The session key of a new signed-in session of ``user``."""
    return await database_sync_to_async(login)(user)


async def connected(session_key: str | None, version: str = "1.2", **headers: str) -> StompTestClient:
    """A client that sent CONNECT and got CONNECTED."""
    client = StompTestClient(session_key)
    frame = await client.connect(version, **headers)
    assert frame.command == "CONNECTED", frame
    return client


async def subscribe(client: StompTestClient, destination: str, sub_id: str = "s1", **headers: str) -> None:
    """SUBSCRIBE and wait for its RECEIPT, so the subscription is in place."""
    receipt = "subscribed-" + sub_id
    await client.send("SUBSCRIBE", {"id": sub_id, "destination": destination, "receipt": receipt, **headers})
    frame = await client.receive()
    assert (frame.command, frame.headers.get("receipt-id")) == ("RECEIPT", receipt), frame


async def expect_error(client: StompTestClient, message: str, code: int) -> Frame:
    """The next frames are an ERROR whose ``message`` header is ``message``, then a close with ``code``."""
    error, closed = await client.receive_error()
    assert error.headers["message"] == message, error
    assert closed == code
    return error


async def expect_receipt(client: StompTestClient, receipt_id: str) -> None:
    frame = await client.receive()
    assert (frame.command, frame.headers.get("receipt-id")) == ("RECEIPT", receipt_id), frame


def stomp_settings(**values: Any):
    """``override_settings(STOMP_PUSH=...)`` with upper-case keys, as a project writes them."""
    return override_settings(STOMP_PUSH={name.upper(): value for name, value in values.items()})


@pytest.fixture
async def key(alice, login) -> str:
    return await sign_in(alice, login)


# -- CONNECT / STOMP and version negotiation ----------------------------------------------------------------


async def test_connect_is_answered_with_connected_naming_version_server_session_and_user(key):
    client = StompTestClient(key)
    frame = await client.connect("1.2")
    assert frame.command == "CONNECTED"
    assert frame.headers["version"] == "1.2"
    assert frame.headers["server"].startswith("django-stomp-push")
    assert frame.headers["session"]
    assert frame.headers["user-name"] == "alice"
    assert int(frame.headers["session-expires"]) > 0
    await client.close()


async def test_stomp_frame_connects_like_connect(key):
    client = StompTestClient(key)
    await client.open()
    await client.send("STOMP", {"accept-version": "1.2", "host": "testserver"})
    frame = await client.receive()
    assert (frame.command, frame.headers["version"]) == ("CONNECTED", "1.2")
    await client.close()


async def test_stomp_frame_without_host_is_refused(key):
    client = StompTestClient(key)
    await client.open()
    await client.send("STOMP", {"accept-version": "1.2"})
    error = await expect_error(client, "missing header", PROTOCOL_ERROR)
    assert b"host" in error.body


@pytest.mark.parametrize(
    ("accept_version", "negotiated"),
    [("1.0", "1.0"), ("1.1", "1.1"), ("1.2", "1.2"), ("1.0,1.1", "1.1"), ("1.1,1.0,1.2", "1.2"), ("1.2,9.9", "1.2")],
)
async def test_the_highest_version_both_sides_speak_is_chosen(key, accept_version, negotiated):
    client = StompTestClient(key)
    frame = await client.connect(accept_version)
    assert frame.headers["version"] == negotiated
    await client.close()


async def test_connect_without_accept_version_speaks_stomp_1_0(key):
    client = StompTestClient(key)
    await client.open()
    await client.send("CONNECT", {"host": "testserver"})
    frame = await client.receive()
    assert frame.headers["version"] == "1.0"
    assert "heart-beat" not in frame.headers  # heart-beating does not exist in 1.0
    await client.close()


async def test_an_unsupported_version_gets_an_error_listing_the_supported_ones(key):
    client = StompTestClient(key)
    await client.open()
    await client.send("CONNECT", {"accept-version": "2.0,3.1", "host": "testserver"})
    error = await expect_error(client, "unsupported STOMP version", PROTOCOL_ERROR)
    assert b"1.0,1.1,1.2" in error.body


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["v10.stomp", "v11.stomp", "v12.stomp"], "v12.stomp"),
        (["v11.stomp", "v10.stomp"], "v11.stomp"),
        (["v10.stomp"], "v10.stomp"),
        (["chat", "v11.stomp"], "v11.stomp"),
    ],
)
async def test_the_highest_stomp_subprotocol_offered_is_chosen(key, offered, chosen):
    client = StompTestClient(key, subprotocols=offered)
    assert await client.open()
    assert client.subprotocol == chosen
    await client.close()


@pytest.mark.parametrize("offered", [[], ["chat"]], ids=["no subprotocol", "no stomp subprotocol"])
async def test_a_client_offering_no_stomp_subprotocol_still_connects(key, offered):
    client = StompTestClient(key)
    client.communicator.scope["subprotocols"] = offered  # the application starts on open()
    frame = await client.connect("1.2")
    assert client.subprotocol is None
    assert frame.command == "CONNECTED"
    await client.close()


@pytest.mark.parametrize(("subprotocol", "version"), [("v10.stomp", "1.0"), ("v11.stomp", "1.1"), ("v12.stomp", "1.2")])
async def test_each_version_works_end_to_end_over_its_subprotocol(key, subprotocol, version):
    client = StompTestClient(key, subprotocols=[subprotocol])
    frame = await client.connect(version)
    assert (client.subprotocol, frame.headers["version"]) == (subprotocol, version)
    await subscribe(client, "/topic/each-version")
    await apush("/topic/each-version", "hello")
    message = await client.receive()
    assert (message.command, message.body) == ("MESSAGE", b"hello")
    await client.close()


# -- WebSocket message framing --------------------------------------------------------------------------------


async def test_frames_may_arrive_in_binary_websocket_messages(key):
    client = StompTestClient(key)
    await client.open()
    await client.send_raw(b"CONNECT\naccept-version:1.2\nhost:testserver\n\n\x00", binary=True)
    assert (await client.receive()).command == "CONNECTED"
    await client.send_raw(b"SUBSCRIBE\nid:0\ndestination:/topic/bin\nreceipt:r\n\n\x00", binary=True)
    await expect_receipt(client, "r")
    await client.close()


async def test_several_frames_in_one_message_and_one_frame_over_several_messages(key):
    client = await connected(key)
    await client.send_raw(
        "SUBSCRIBE\nid:a\ndestination:/topic/x\nreceipt:1\n\n\x00\nSUBSCRIBE\nid:b\ndestination:/topic/y\nreceipt:2\n\n\x00"
    )
    await expect_receipt(client, "1")
    await expect_receipt(client, "2")
    await client.send_raw("UNSUBSCRIBE\nid:a\nrec")
    await client.send_raw("eipt:3\n\n")
    assert await client.nothing_received(0.1)
    await client.send_raw("\x00")
    await expect_receipt(client, "3")
    await client.close()


# -- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------------------------------------


async def test_a_subscriber_receives_pushes_to_its_topic_only(key):
    client = await connected(key)
    await subscribe(client, "/topic/a")
    await apush("/topic/b", "not for you")
    await apush("/topic/a", "for you")
    message = await client.receive()
    assert (message.headers["destination"], message.body) == ("/topic/a", b"for you")
    assert await client.nothing_received()
    await client.close()


async def test_no_message_arrives_after_unsubscribe(key):
    client = await connected(key)
    await subscribe(client, "/topic/news")
    await client.send("UNSUBSCRIBE", {"id": "s1", "receipt": "gone"})
    await expect_receipt(client, "gone")
    await apush("/topic/news", "late")
    assert await client.nothing_received()
    await client.close()


async def test_unsubscribe_of_a_user_destination_stops_its_messages(alice, key):
    from django_stomp_push import apush_to_user

    client = await connected(key)
    await subscribe(client, "/user/queue/notices")
    await client.send("UNSUBSCRIBE", {"id": "s1", "receipt": "gone"})
    await expect_receipt(client, "gone")
    await apush_to_user(alice, "/queue/notices", "late")
    assert await client.nothing_received()
    await client.close()


async def test_two_subscriptions_of_one_topic_each_get_the_message_with_their_id(key):
    client = await connected(key)
    await subscribe(client, "/topic/dup", "first")
    await subscribe(client, "/topic/dup", "second")
    await apush("/topic/dup", "twice")
    ids = {(await client.receive()).headers["subscription"] for _ in range(2)}
    assert ids == {"first", "second"}
    await client.close()


async def test_subscribing_to_an_application_destination_is_refused(key):
    client = await connected(key)
    await client.send("SUBSCRIBE", {"id": "0", "destination": "/app/echo"})
    await expect_error(client, "cannot subscribe to /app/echo", POLICY_VIOLATION)


async def test_subscribing_outside_the_known_prefixes_is_refused(key):
    client = await connected(key)
    await client.send("SUBSCRIBE", {"id": "0", "destination": "/queue/jobs"})
    await expect_error(client, "unknown destination /queue/jobs", POLICY_VIOLATION)


# -- SEND to application handlers and replies ----------------------------------------------------------------


async def test_send_to_a_sync_handler_replies_on_the_default_reply_destination(key):
    client = await connected(key)
    await subscribe(client, "/user/queue/reply")
    await client.send("SEND", {"destination": "/app/echo", "receipt": "sent"}, "hi there")
    reply = await client.receive()
    assert reply.headers["destination"] == "/user/queue/reply"
    assert reply.headers["content-type"] == "application/json"
    body = json.loads(reply.body)
    assert (body["echo"], body["user"]) == ("hi there", "alice")
    await expect_receipt(client, "sent")
    await client.close()


async def test_send_to_an_async_handler_replies(key):
    client = await connected(key)
    await subscribe(client, "/user/queue/reply")
    await client.send("SEND", {"destination": "/app/echo-async"}, "ping")
    reply = await client.receive()
    assert (reply.body, reply.headers["content-type"]) == (b"async:ping", "text/plain;charset=utf-8")
    await client.close()


async def test_the_reply_to_header_chooses_the_reply_destination(key):
    client = await connected(key)
    await subscribe(client, "/user/queue/reply", "default")
    await subscribe(client, "/user/queue/answers", "answers")
    await client.send("SEND", {"destination": "/app/echo-async", "reply-to": "/user/queue/answers"}, "q")
    reply = await client.receive()
    assert (reply.headers["subscription"], reply.headers["destination"]) == ("answers", "/user/queue/answers")
    assert await client.nothing_received()
    await client.close()


async def test_a_reply_reaches_only_the_sending_connection(key):
    sender, other_tab = await connected(key), await connected(key)
    await subscribe(sender, "/user/queue/reply")
    await subscribe(other_tab, "/user/queue/reply")
    await sender.send("SEND", {"destination": "/app/echo-async"}, "mine")
    assert (await sender.receive()).body == b"async:mine"
    assert await other_tab.nothing_received()
    await sender.close()
    await other_tab.close()


async def test_placeholders_in_a_handler_destination_are_filled_from_the_send(key):
    client = await connected(key)
    await subscribe(client, "/topic/rooms/blue")
    await client.send("SEND", {"destination": "/app/rooms/blue"}, "hello blue room")
    message = await client.receive()
    assert (message.headers["destination"], message.body) == ("/topic/rooms/blue", b"hello blue room")
    await client.close()


async def test_a_failing_handler_closes_with_an_error_and_1011_and_is_logged(key, caplog):
    client = await connected(key)
    with caplog.at_level(logging.ERROR, logger="django_stomp_push"):
        await client.send("SEND", {"destination": "/app/fail"}, "boom")
        await expect_error(client, "internal server error", SERVER_ERROR)
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records)


async def test_send_to_an_application_destination_without_a_handler_is_refused(key):
    client = await connected(key)
    await client.send("SEND", {"destination": "/app/nowhere"}, "?")
    await expect_error(client, "no handler for /app/nowhere", POLICY_VIOLATION)


# -- SEND to /topic/ and /user/ ------------------------------------------------------------------------------


async def test_send_to_a_topic_is_refused_by_default(key):
    client = await connected(key)
    await client.send("SEND", {"destination": "/topic/chat"}, "hi all")
    error = await expect_error(client, "SEND not allowed to /topic/chat", POLICY_VIOLATION)
    assert b"CLIENT_SEND_TO_TOPICS" in error.body


async def test_send_to_a_topic_reaches_its_subscribers_with_client_send_to_topics(alice, bob, login):
    with stomp_settings(client_send_to_topics=True):
        sender = await connected(await sign_in(alice, login))
        listener = await connected(await sign_in(bob, login))
        await subscribe(listener, "/topic/chat")
        await sender.send(
            "SEND",
            {"destination": "/topic/chat", "content-type": "application/json", "x-from": "alice", "receipt": "r"},
            '{"text":"hi"}',
        )
        await expect_receipt(sender, "r")
        message = await listener.receive()
    assert message.body == b'{"text":"hi"}'
    assert message.headers["content-type"] == "application/json"
    assert message.headers["x-from"] == "alice"
    assert "receipt" not in message.headers
    await sender.close()
    await listener.close()


async def test_a_binary_send_to_a_topic_is_delivered_as_binary(key):
    with stomp_settings(client_send_to_topics=True):
        client = await connected(key)
        await subscribe(client, "/topic/blobs")
        body = bytes(range(256))
        frame = Frame("SEND", {"destination": "/topic/blobs"}, body)
        await client.send_raw(encode(frame), binary=True)
        message = await client.receive()
    assert message.body == body
    assert message.headers["content-type"] == "application/octet-stream"
    await client.close()


@pytest.mark.parametrize("allow_topics", [False, True])
async def test_send_to_a_user_destination_is_always_refused(key, allow_topics):
    with stomp_settings(client_send_to_topics=allow_topics):
        client = await connected(key)
        await client.send("SEND", {"destination": "/user/queue/x"}, "forged")
        await expect_error(client, "SEND not allowed to /user/queue/x", POLICY_VIOLATION)


# -- transactions --------------------------------------------------------------------------------------------


async def test_sends_in_a_transaction_happen_at_commit(key):
    client = await connected(key)
    await subscribe(client, "/topic/rooms/tx")
    await client.send("BEGIN", {"transaction": "t1"})
    await client.send("SEND", {"destination": "/app/rooms/tx", "transaction": "t1"}, "one")
    await client.send("SEND", {"destination": "/app/rooms/tx", "transaction": "t1"}, "two")
    assert await client.nothing_received()
    await client.send("COMMIT", {"transaction": "t1", "receipt": "committed"})
    assert (await client.receive()).body == b"one"
    assert (await client.receive()).body == b"two"
    await expect_receipt(client, "committed")
    await client.close()


async def test_sends_in_an_aborted_transaction_never_happen(key):
    client = await connected(key)
    await subscribe(client, "/topic/rooms/tx")
    await client.send("BEGIN", {"transaction": "t1"})
    await client.send("SEND", {"destination": "/app/rooms/tx", "transaction": "t1"}, "never")
    await client.send("ABORT", {"transaction": "t1", "receipt": "aborted"})
    await expect_receipt(client, "aborted")
    await client.send("SEND", {"destination": "/app/rooms/tx"}, "after")
    assert (await client.receive()).body == b"after"
    await client.close()


async def test_a_transaction_name_is_free_again_after_commit(key):
    client = await connected(key)
    for n in range(2):
        await client.send("BEGIN", {"transaction": "t"})
        await client.send("COMMIT", {"transaction": "t", "receipt": str(n)})
        await expect_receipt(client, str(n))
    await client.close()


@pytest.mark.parametrize("command", ["SEND", "COMMIT", "ABORT"])
async def test_an_unknown_transaction_is_an_error(key, command):
    client = await connected(key)
    await client.send(command, {"destination": "/app/echo", "transaction": "never-begun"})
    error = await expect_error(client, "unknown transaction", PROTOCOL_ERROR)
    assert b"never-begun" in error.body


async def test_a_transaction_begun_twice_is_an_error(key):
    client = await connected(key)
    await client.send("BEGIN", {"transaction": "t"})
    await client.send("BEGIN", {"transaction": "t"})
    await expect_error(client, "duplicate transaction", PROTOCOL_ERROR)


# -- ACK / NACK ----------------------------------------------------------------------------------------------


async def pushed_messages(client: StompTestClient, destination: str, count: int) -> list[Frame]:
    for n in range(count):
        await apush(destination, f"m{n}")
    return [await client.receive() for _ in range(count)]


@pytest.mark.parametrize("command", ["ACK", "NACK"])
async def test_client_ack_mode_settles_a_message_and_every_earlier_one(key, command):
    client = await connected(key)
    await subscribe(client, "/topic/acks", ack="client")
    first, second, third = await pushed_messages(client, "/topic/acks", 3)
    assert first.headers["ack"] and first.headers["ack"] != second.headers["ack"]
    await client.send(command, {"id": second.headers["ack"], "receipt": "r2"})
    await expect_receipt(client, "r2")
    await client.send(command, {"id": third.headers["ack"], "receipt": "r3"})
    await expect_receipt(client, "r3")
    await client.send(command, {"id": first.headers["ack"]})  # settled by the cumulative ACK of the second
    await expect_error(client, f"{command} for unknown message", PROTOCOL_ERROR)


@pytest.mark.parametrize("command", ["ACK", "NACK"])
async def test_client_individual_ack_mode_settles_only_that_message(key, command):
    client = await connected(key)
    await subscribe(client, "/topic/acks", ack="client-individual")
    first, second = await pushed_messages(client, "/topic/acks", 2)
    await client.send(command, {"id": second.headers["ack"], "receipt": "r2"})
    await expect_receipt(client, "r2")
    await client.send(command, {"id": first.headers["ack"], "receipt": "r1"})
    await expect_receipt(client, "r1")
    await client.send(command, {"id": first.headers["ack"]})
    await expect_error(client, f"{command} for unknown message", PROTOCOL_ERROR)


async def test_stomp_1_1_acks_by_message_id_and_subscription(key):
    client = await connected(key, "1.1")
    await subscribe(client, "/topic/acks", ack="client-individual")
    (message,) = await pushed_messages(client, "/topic/acks", 1)
    assert "ack" not in message.headers  # the ack header is new in 1.2
    await client.send("ACK", {"message-id": message.headers["message-id"], "subscription": "s1", "receipt": "r"})
    await expect_receipt(client, "r")
    await client.close()


async def test_an_ack_for_an_unknown_message_is_an_error(key):
    client = await connected(key)
    await subscribe(client, "/topic/acks", ack="client")
    await client.send("ACK", {"id": "no-such-message"})
    error = await expect_error(client, "ACK for unknown message", PROTOCOL_ERROR)
    assert b"no-such-message" in error.body


async def test_an_ack_on_an_auto_subscription_is_an_error(key):
    client = await connected(key, "1.1")
    await subscribe(client, "/topic/auto")
    (message,) = await pushed_messages(client, "/topic/auto", 1)
    await client.send("ACK", {"message-id": message.headers["message-id"], "subscription": "s1"})
    error = await expect_error(client, "ACK not expected", PROTOCOL_ERROR)
    assert b"auto" in error.body


async def test_an_ack_in_a_committed_transaction_settles_the_message(key):
    client = await connected(key)
    await subscribe(client, "/topic/acks", ack="client-individual")
    (message,) = await pushed_messages(client, "/topic/acks", 1)
    await client.send("BEGIN", {"transaction": "t"})
    await client.send("ACK", {"id": message.headers["ack"], "transaction": "t"})
    await client.send("COMMIT", {"transaction": "t", "receipt": "c"})
    await expect_receipt(client, "c")
    await client.send("ACK", {"id": message.headers["ack"]})
    await expect_error(client, "ACK for unknown message", PROTOCOL_ERROR)


async def test_an_ack_in_an_aborted_transaction_leaves_the_message_unacknowledged(key):
    client = await connected(key)
    await subscribe(client, "/topic/acks", ack="client-individual")
    (message,) = await pushed_messages(client, "/topic/acks", 1)
    await client.send("BEGIN", {"transaction": "t"})
    await client.send("ACK", {"id": message.headers["ack"], "transaction": "t"})
    await client.send("ABORT", {"transaction": "t", "receipt": "a"})
    await expect_receipt(client, "a")
    await client.send("ACK", {"id": message.headers["ack"], "receipt": "again"})
    await expect_receipt(client, "again")
    await client.close()


async def test_nack_does_not_exist_in_stomp_1_0(key):
    client = await connected(key, "1.0")
    await client.send("NACK", {"message-id": "1"})
    await expect_error(client, "unknown command", PROTOCOL_ERROR)


async def test_too_many_unacknowledged_messages_close_the_connection(key):
    with stomp_settings(max_pending_acks=2):
        client = await connected(key)
        await subscribe(client, "/topic/acks", ack="client")
        for n in range(3):
            await apush("/topic/acks", str(n))
        assert (await client.receive()).body == b"0"
        assert (await client.receive()).body == b"1"
        await expect_error(client, "too many unacknowledged messages", POLICY_VIOLATION)


# -- DISCONNECT ----------------------------------------------------------------------------------------------


async def test_disconnect_with_a_receipt_is_answered_then_closed_with_1000(key):
    client = await connected(key)
    await client.send("DISCONNECT", {"receipt": "bye"})
    await expect_receipt(client, "bye")
    with pytest.raises(Closed) as closed:
        await client.receive()
    assert closed.value.code == 1000


async def test_disconnect_without_a_receipt_closes_with_1000(key):
    client = await connected(key)
    await client.send("DISCONNECT")
    with pytest.raises(Closed) as closed:
        await client.receive()
    assert closed.value.code == 1000


# -- receipts on every frame type ----------------------------------------------------------------------------


async def _ack_setup(client: StompTestClient) -> dict[str, str]:
    await subscribe(client, "/topic/receipts", "acked", ack="client-individual")
    await apush("/topic/receipts", "x")
    return {"id": (await client.receive()).headers["ack"]}


async def _unsubscribe_setup(client: StompTestClient) -> dict[str, str]:
    await subscribe(client, "/topic/receipts", "to-drop")
    return {"id": "to-drop"}


async def _transaction_setup(client: StompTestClient) -> dict[str, str]:
    await client.send("BEGIN", {"transaction": "open"})
    return {"transaction": "open"}


async def _nothing(client: StompTestClient) -> dict[str, str]:
    return {}


RECEIPTED_FRAMES = {
    "SUBSCRIBE": (_nothing, {"id": "new", "destination": "/topic/receipts"}),
    "UNSUBSCRIBE": (_unsubscribe_setup, {}),
    "SEND": (_nothing, {"destination": "/app/echo-async"}),
    "ACK": (_ack_setup, {}),
    "NACK": (_ack_setup, {}),
    "BEGIN": (_nothing, {"transaction": "new"}),
    "COMMIT": (_transaction_setup, {}),
    "ABORT": (_transaction_setup, {}),
    "SEND in a transaction": (_transaction_setup, {"destination": "/app/echo-async"}),
    "DISCONNECT": (_nothing, {}),
}


@pytest.mark.parametrize("frame", list(RECEIPTED_FRAMES))
async def test_every_frame_with_a_receipt_header_gets_its_receipt(key, frame):
    setup, headers = RECEIPTED_FRAMES[frame]
    client = await connected(key)
    headers = {**headers, **await setup(client), "receipt": "rcpt:" + frame}  # ':' is escaped both ways
    await client.send(frame.split()[0], headers)
    await expect_receipt(client, "rcpt:" + frame)
    await client.close()


async def test_an_error_names_the_receipt_of_the_frame_that_caused_it(key):
    client = await connected(key)
    await subscribe(client, "/topic/x", "dup")
    await client.send("SUBSCRIBE", {"id": "dup", "destination": "/topic/y", "receipt": "r-dup"})
    error = await expect_error(client, "duplicate subscription id", PROTOCOL_ERROR)
    assert error.headers["receipt-id"] == "r-dup"


# -- heart-beats ---------------------------------------------------------------------------------------------


async def count_heartbeats(client: StompTestClient, seconds: float) -> int:
    """Heart-beats received during ``seconds`` (no frame is expected meanwhile)."""
    loop = asyncio.get_running_loop()
    before, deadline = client.heartbeats, loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        if not await client.communicator.receive_nothing(timeout=left, interval=0.005):
            message = await client.communicator.receive_output()
            assert message["type"] == "websocket.send" and message.get("text") == "\n", message
            client.heartbeats += 1
    return client.heartbeats - before


async def test_the_server_sends_heart_beats_on_the_negotiated_schedule(key):
    with stomp_settings(heartbeat=(100, 100)):
        client = await connected(key, heart_beat="0,100")  # the client sends nothing, wants one every 100 ms
        beats = await count_heartbeats(client, 0.65)
    assert 4 <= beats <= 8, beats
    await client.close()


async def test_the_server_sends_no_heart_beats_when_the_client_wants_none(key):
    with stomp_settings(heartbeat=(100, 100)):
        client = await connected(key, heart_beat="0,0")
        assert await count_heartbeats(client, 0.4) == 0
    await client.close()


async def test_a_silent_client_is_closed_with_heart_beat_timeout_after_the_grace(key):
    with stomp_settings(heartbeat=(100, 100), heartbeat_grace=2.0):
        client = await connected(key, heart_beat="100,0")  # promises a heart-beat every 100 ms, sends none
        loop = asyncio.get_running_loop()
        started = loop.time()
        error = await expect_error(client, "heart-beat timeout", POLICY_VIOLATION)
    assert 0.15 <= loop.time() - started < 1.0
    assert b"heart-beats" in error.body


async def test_a_client_that_keeps_sending_heart_beats_stays_connected(key):
    with stomp_settings(heartbeat=(100, 100), heartbeat_grace=2.0):
        client = await connected(key, heart_beat="100,0")
        for _ in range(12):  # 0.6 s: three times the grace
            await client.send_raw("\n")
            await asyncio.sleep(0.05)
        await client.send("SUBSCRIBE", {"id": "0", "destination": "/topic/alive", "receipt": "still-here"})
        await expect_receipt(client, "still-here")
    await client.close()


async def test_a_heart_beat_that_arrived_while_the_server_was_busy_counts(key):
    """Liveness counts bytes when they reach the server, not when a saturated event loop gets to them."""
    with stomp_settings(heartbeat=(100, 100), heartbeat_grace=2.0):
        client = await connected(key, heart_beat="100,0")
        loop = asyncio.get_running_loop()
        # A heart-beat reaches the server at 0.3 s, while its event loop is busy for 0.6 s (three times the grace):
        # when the loop is free again, the overdue check runs first, then the read of what arrived meanwhile.
        beat = {"type": "websocket.receive", "text": "\n"}
        loop.call_later(0.3, lambda: asyncio.ensure_future(client.communicator.send_input(beat)))
        time.sleep(0.6)  # noqa: ASYNC251  (the point: an event loop busy with other work)
        await asyncio.sleep(0)
        for _ in range(6):
            await client.send_raw("\n")
            await asyncio.sleep(0.05)
        await client.send("SUBSCRIBE", {"id": "0", "destination": "/topic/alive", "receipt": "still-here"})
        await expect_receipt(client, "still-here")
    await client.close()


async def test_a_client_is_not_blamed_for_silence_while_the_server_waits_on_the_channel_layer(key, monkeypatch):
    from django_stomp_push.hub import Hub

    joined = asyncio.Event()

    async def slow_join(self, group):  # a stalled channel layer: the SUBSCRIBE's group join takes 0.6 s
        await asyncio.sleep(0.6)
        joined.set()

    with stomp_settings(heartbeat=(100, 100), heartbeat_grace=2.0):
        client = await connected(key, heart_beat="100,0")
        monkeypatch.setattr(Hub, "join", slow_join)
        await client.send("SUBSCRIBE", {"id": "0", "destination": "/topic/stalled", "receipt": "joined"})
        while not joined.is_set():
            await client.send_raw("\n")
            await asyncio.sleep(0.05)
        await expect_receipt(client, "joined")
    await client.close()


async def test_any_frame_counts_as_a_heart_beat(key):
    with stomp_settings(heartbeat=(100, 100), heartbeat_grace=2.0):
        client = await connected(key, heart_beat="100,0")
        for n in range(8):
            await client.send("SUBSCRIBE", {"id": str(n), "destination": "/topic/alive", "receipt": str(n)})
            await expect_receipt(client, str(n))
            await asyncio.sleep(0.07)
    await client.close()


async def test_stomp_1_0_has_no_heart_beat_timeout(key):
    with stomp_settings(heartbeat=(100, 100)):
        client = await connected(key, "1.0", heart_beat="100,100")
        assert await client.nothing_received(0.5)
    await client.close()


# -- protocol errors -----------------------------------------------------------------------------------------

#: (what the client sends after CONNECT, settings, ERROR message, close code)
PROTOCOL_ERRORS = {
    "malformed header": ("SEND\ndestination\n\n\x00", {}, "malformed header", PROTOCOL_ERROR),
    "malformed command": ("send\n\n\x00", {}, "malformed command line", PROTOCOL_ERROR),
    "bad escape": ("SEND\ndestination:/app/\\t\n\n\x00", {}, "invalid header escape", PROTOCOL_ERROR),
    "bad content-length": ("SEND\ndestination:/app/echo\ncontent-length:x\n\n\x00", {}, "invalid content-length", 1002),
    "frame too large": (
        "SEND\ndestination:/app/echo\n\n" + "x" * 2000 + "\x00",
        {"max_frame_size": 1024},
        "frame too large",
        TOO_BIG,
    ),
    "content-length too large": (
        "SEND\ndestination:/app/echo\ncontent-length:5000\n\n",
        {"max_frame_size": 1024},
        "frame too large",
        TOO_BIG,
    ),
    "too many headers": (
        "SEND\ndestination:/app/echo\n" + "".join(f"h{n}:v\n" for n in range(10)) + "\n\x00",
        {"max_header_count": 4},
        "too many headers",
        PROTOCOL_ERROR,
    ),
    "header too long": (
        "SEND\ndestination:/app/" + "e" * 200 + "\n\n\x00",
        {"max_header_length": 100},
        "header too long",
        PROTOCOL_ERROR,
    ),
    "second CONNECT": ("CONNECT\naccept-version:1.2\nhost:x\n\n\x00", {}, "already connected", PROTOCOL_ERROR),
    "second STOMP": ("STOMP\naccept-version:1.2\nhost:x\n\n\x00", {}, "already connected", PROTOCOL_ERROR),
    "unknown command": ("PUBLISH\ndestination:/topic/x\n\n\x00", {}, "unknown command", PROTOCOL_ERROR),
    "SEND without destination": ("SEND\n\nbody\x00", {}, "missing header", PROTOCOL_ERROR),
    "SUBSCRIBE without id": ("SUBSCRIBE\ndestination:/topic/x\n\n\x00", {}, "missing header", PROTOCOL_ERROR),
    "SUBSCRIBE without destination": ("SUBSCRIBE\nid:0\n\n\x00", {}, "missing header", PROTOCOL_ERROR),
    "UNSUBSCRIBE without id": ("UNSUBSCRIBE\n\n\x00", {}, "missing header", PROTOCOL_ERROR),
    "BEGIN without transaction": ("BEGIN\n\n\x00", {}, "missing header", PROTOCOL_ERROR),
    "ACK without id": ("ACK\n\n\x00", {}, "missing header", PROTOCOL_ERROR),
    "invalid ack mode": ("SUBSCRIBE\nid:0\ndestination:/topic/x\nack:never\n\n\x00", {}, "invalid ack mode", 1002),
    "duplicate subscription id": (
        "SUBSCRIBE\nid:0\ndestination:/topic/x\n\n\x00SUBSCRIBE\nid:0\ndestination:/topic/y\n\n\x00",
        {},
        "duplicate subscription id",
        PROTOCOL_ERROR,
    ),
    "unknown subscription": ("UNSUBSCRIBE\nid:nope\n\n\x00", {}, "unknown subscription", PROTOCOL_ERROR),
    "too many subscriptions": (
        "".join(f"SUBSCRIBE\nid:{n}\ndestination:/topic/{n}\n\n\x00" for n in range(3)),
        {"max_subscriptions": 2},
        "too many subscriptions",
        PROTOCOL_ERROR,
    ),
    "too many transactions": (
        "".join(f"BEGIN\ntransaction:{n}\n\n\x00" for n in range(3)),
        {"max_transactions": 2},
        "too many transactions",
        PROTOCOL_ERROR,
    ),
    "too many frames in a transaction": (
        "BEGIN\ntransaction:t\n\n\x00" + "SEND\ndestination:/app/echo\ntransaction:t\n\n\x00" * 3,
        {"max_transaction_frames": 2},
        "too many frames in transaction",
        PROTOCOL_ERROR,
    ),
}


@pytest.mark.parametrize("case", list(PROTOCOL_ERRORS))
async def test_a_protocol_error_gets_an_error_frame_naming_it_then_a_close(key, case):
    data, settings, message, code = PROTOCOL_ERRORS[case]
    with stomp_settings(**settings):
        client = await connected(key)
        await client.send_raw(data)
        await expect_error(client, message, code)


async def test_invalid_utf8_in_headers_is_a_protocol_error(key):
    client = await connected(key)
    await client.send_raw(b"SEND\ndestination:/app/\xff\xfe\n\n\x00", binary=True)
    await expect_error(client, "invalid UTF-8 in frame headers", PROTOCOL_ERROR)


async def test_a_missing_header_error_names_the_header(key):
    client = await connected(key)
    await client.send_raw("SEND\n\nbody\x00")
    error = await expect_error(client, "missing header", PROTOCOL_ERROR)
    assert b"destination" in error.body


async def test_a_frame_before_connect_is_refused(key):
    client = StompTestClient(key)
    await client.open()
    await client.send("SUBSCRIBE", {"id": "0", "destination": "/topic/x"})
    await expect_error(client, "not connected", PROTOCOL_ERROR)


async def test_an_oversized_connect_frame_is_refused_before_it_is_complete(key):
    with stomp_settings(max_frame_size=1024):
        client = StompTestClient(key)
        await client.open()
        await client.send_raw("CONNECT\naccept-version:1.2\nhost:x\n" + "x:" + "y" * 2000)
        await expect_error(client, "frame too large", TOO_BIG)


async def test_an_invalid_heart_beat_header_is_refused(key):
    client = StompTestClient(key)
    await client.open()
    await client.send("CONNECT", {"accept-version": "1.2", "host": "x", "heart-beat": "soon"})
    await expect_error(client, "invalid heart-beat header", PROTOCOL_ERROR)


async def test_no_connect_within_the_timeout_closes_the_websocket(key):
    with stomp_settings(connect_timeout=0.2):
        client = StompTestClient(key)
        await client.open()
        error = await expect_error(client, "CONNECT timeout", POLICY_VIOLATION)
    assert b"0.2 seconds" in error.body


async def test_a_connect_in_time_cancels_the_connect_timeout(key):
    with stomp_settings(connect_timeout=0.2, heartbeat=(0, 0)):
        client = await connected(key)
        assert await client.nothing_received(0.4)
    await client.close()


async def test_the_close_carries_the_error_message_as_its_reason(key):
    client = await connected(key)
    await client.send_raw("PUBLISH\n\n\x00")
    assert (await client.receive()).command == "ERROR"
    close = await client.communicator.receive_output()
    assert close == {"type": "websocket.close", "code": PROTOCOL_ERROR, "reason": "unknown command"}


async def test_nothing_is_processed_after_an_error(key):
    client = await connected(key)
    await client.send_raw("PUBLISH\n\n\x00SUBSCRIBE\nid:0\ndestination:/topic/x\nreceipt:r\n\n\x00")
    await expect_error(client, "unknown command", PROTOCOL_ERROR)


# -- the authorization hook ----------------------------------------------------------------------------------

AUTHORIZE_CALLS: list[tuple[str, str, str]] = []


def deny_secrets(user: Any, action: str, destination: str) -> bool:
    AUTHORIZE_CALLS.append((user.get_username(), action, destination))
    return "secret" not in destination


async def deny_secrets_async(user: Any, action: str, destination: str) -> bool:
    await asyncio.sleep(0)
    return deny_secrets(user, action, destination)


HOOKS = ["tests.test_consumer.deny_secrets", "tests.test_consumer.deny_secrets_async"]


@pytest.fixture
def authorize_calls():
    AUTHORIZE_CALLS.clear()
    yield AUTHORIZE_CALLS
    AUTHORIZE_CALLS.clear()


@pytest.mark.parametrize("hook", HOOKS, ids=["sync hook", "async hook"])
async def test_a_refused_subscribe_closes_with_an_error_naming_the_destination(key, hook, authorize_calls):
    with stomp_settings(authorize=hook):
        client = await connected(key)
        await client.send("SUBSCRIBE", {"id": "0", "destination": "/topic/secret-plans"})
        await expect_error(client, "access denied to /topic/secret-plans", POLICY_VIOLATION)
    assert authorize_calls == [("alice", "subscribe", "/topic/secret-plans")]


@pytest.mark.parametrize("hook", HOOKS, ids=["sync hook", "async hook"])
async def test_a_refused_send_closes_with_an_error_naming_the_destination(key, hook, authorize_calls):
    with stomp_settings(authorize=hook):
        client = await connected(key)
        await client.send("SEND", {"destination": "/app/rooms/secret"}, "leak")
        await expect_error(client, "access denied to /app/rooms/secret", POLICY_VIOLATION)
    assert ("alice", "send", "/app/rooms/secret") in authorize_calls


@pytest.mark.parametrize("hook", HOOKS, ids=["sync hook", "async hook"])
async def test_what_the_hook_allows_works(key, hook, authorize_calls):
    with stomp_settings(authorize=hook):
        client = await connected(key)
        await subscribe(client, "/topic/rooms/open")
        await client.send("SEND", {"destination": "/app/rooms/open"}, "fine")
        assert (await client.receive()).body == b"fine"
    assert authorize_calls == [("alice", "subscribe", "/topic/rooms/open"), ("alice", "send", "/app/rooms/open")]
    await client.close()


# -- the Django session --------------------------------------------------------------------------------------


async def test_a_connection_without_a_session_is_refused_with_1008():
    client = StompTestClient(None)
    await client.open()
    await client.send("CONNECT", {"accept-version": "1.2", "host": "x"})
    await expect_error(client, "no valid session", POLICY_VIOLATION)


async def test_a_connection_with_an_unknown_session_key_is_refused_with_1008(transactional_db):
    client = StompTestClient("0123456789abcdefghijklmnopqrstuv")
    await client.open()
    await client.send("CONNECT", {"accept-version": "1.2", "host": "x"})
    await expect_error(client, "no valid session", POLICY_VIOLATION)


async def test_allow_anonymous_lets_a_client_without_a_session_connect_unbound():
    with stomp_settings(allow_anonymous=True):
        client = await connected(None)
        await subscribe(client, "/topic/public")
        await apush("/topic/public", "for everyone")
        assert (await client.receive()).body == b"for everyone"
    await client.close()


async def test_an_anonymous_connection_has_no_user_name(transactional_db):
    with stomp_settings(allow_anonymous=True):
        client = StompTestClient(None)
        frame = await client.connect()
    assert "user-name" not in frame.headers and "session-expires" not in frame.headers
    await client.close()


# -- CSRF ----------------------------------------------------------------------------------------------------


def csrf_pair() -> tuple[str, str]:
    """(masked token as a page would send it, the csrftoken cookie's value)."""
    request = HttpRequest()
    token = get_token(request)
    return token, request.META["CSRF_COOKIE"]


def csrf_client(session_key: str, cookie: str | None) -> StompTestClient:
    cookies = f"sessionid={session_key}" + (f"; csrftoken={cookie}" if cookie else "")
    return StompTestClient(None, extra_headers=[(b"cookie", cookies.encode())])


async def test_with_csrf_check_a_connect_with_the_pages_token_is_accepted(key):
    token, cookie = csrf_pair()
    with stomp_settings(csrf_check=True):
        client = csrf_client(key, cookie)
        frame = await client.connect(**{"X-CSRFToken": token})
    assert (frame.command, frame.headers["user-name"]) == ("CONNECTED", "alice")
    await client.close()


async def test_with_csrf_check_a_connect_without_a_token_is_refused(key):
    _, cookie = csrf_pair()
    with stomp_settings(csrf_check=True):
        client = csrf_client(key, cookie)
        await client.open()
        await client.send("CONNECT", {"accept-version": "1.2", "host": "x"})
        await expect_error(client, "CSRF check failed", POLICY_VIOLATION)


@pytest.mark.parametrize(
    "token, with_cookie",
    [("wrong", True), ("A" * 64, True), ("A" * 32, True), (None, False)],
    ids=["garbage", "masked of another", "another", "right token, no cookie"],
)
async def test_with_csrf_check_a_connect_without_the_cookie_s_token_is_refused(key, token, with_cookie):
    right_token, cookie = csrf_pair()
    with stomp_settings(csrf_check=True):
        client = csrf_client(key, cookie if with_cookie else None)
        await client.open()
        await client.send("CONNECT", {"accept-version": "1.2", "host": "x", "X-CSRFToken": token or right_token})
        await expect_error(client, "CSRF check failed", POLICY_VIOLATION)


async def test_without_csrf_check_no_token_is_needed(key):
    client = await connected(key)
    await client.close()


# -- what a refusal tells the client --------------------------------------------------------------------------


async def test_a_refused_frame_that_asked_for_a_receipt_gets_its_receipt_id_on_the_error(key):
    client = StompTestClient(key)
    await client.connect()
    await client.send("SUBSCRIBE", {"id": "0", "destination": "/app/echo", "receipt": "r-9"})
    error = await expect_error(client, "cannot subscribe to /app/echo", 1008)
    assert error.headers["receipt-id"] == "r-9"


async def test_an_unsupported_version_error_lists_the_supported_versions_in_a_version_header(key):
    client = StompTestClient(key)
    error = await client.connect(version="2.0")
    assert error.command == "ERROR" and error.headers["version"] == "1.0,1.1,1.2"


# -- what a client should do after a close -------------------------------------------------------------------


async def test_an_error_after_a_session_end_tells_the_client_not_to_reconnect(key):
    from django_stomp_push import aend_session

    client = await connected(key)
    await aend_session(key, "signed out by an administrator")
    error = await expect_error(client, "signed out by an administrator", POLICY_VIOLATION)
    assert error.headers["reconnect"] == "never"


async def test_an_error_for_a_broken_rule_tells_the_client_not_to_reconnect(key):
    client = await connected(key)
    await client.send("SUBSCRIBE", {"id": "0", "destination": "/nowhere"})
    error = await expect_error(client, "unknown destination /nowhere", POLICY_VIOLATION)
    assert error.headers["reconnect"] == "never"


async def test_an_error_after_a_heart_beat_timeout_tells_the_client_to_reconnect_now(key):
    with stomp_settings(heartbeat=(100, 100), heartbeat_grace=2.0):
        client = await connected(key, heart_beat="100,0")
        error = await expect_error(client, "heart-beat timeout", POLICY_VIOLATION)
    assert error.headers["reconnect"] == "now"


async def test_an_error_after_a_server_failure_tells_the_client_to_reconnect_now(key):
    client = await connected(key)
    await client.send("SEND", {"destination": "/app/fail"})
    error = await expect_error(client, "internal server error", SERVER_ERROR)
    assert error.headers["reconnect"] == "now"
