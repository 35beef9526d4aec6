"""The push API: bodies and content types, headers, MESSAGE frames, escaping per version, sync and async calls."""

from __future__ import annotations

import datetime
import decimal
import json

import pytest
from channels.db import database_sync_to_async

from django_stomp_push import apush, apush_to_user, push, push_to_user
from django_stomp_push.destinations import DestinationError
from django_stomp_push.push import RESERVED_HEADERS, encode_body
from django_stomp_push.stomp import Frame, encode
from tests.test_consumer import connected, sign_in, subscribe

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def client(alice, login):
    client = await connected(await sign_in(alice, login))
    await subscribe(client, "/topic/p", "sub-p")
    yield client
    await client.close()


async def raw_message(client) -> dict:
    """The next WebSocket message the server sends, as it is on the wire."""
    message = await client.communicator.receive_output(timeout=2)
    assert message["type"] == "websocket.send", message
    return message


# -- bodies --------------------------------------------------------------------------------------------------


async def test_a_str_body_is_text_plain_utf8_with_its_length_in_bytes(client):
    await apush("/topic/p", "héllo ✓")
    message = await client.receive()
    assert message.body == "héllo ✓".encode()
    assert message.headers["content-type"] == "text/plain;charset=utf-8"
    assert message.headers["content-length"] == str(len("héllo ✓".encode()))


async def test_a_str_body_is_sent_as_a_text_websocket_message(client):
    await apush("/topic/p", "text")
    message = await raw_message(client)
    assert message.get("bytes") is None and message["text"].endswith("\n\ntext\x00")


async def test_a_bytes_body_is_octet_stream_sent_as_a_binary_websocket_message(client):
    body = b"\x00\xff\x01binary\x00"
    await apush("/topic/p", body)
    message = await raw_message(client)
    assert message.get("text") is None
    assert message["bytes"].endswith(b"\n\n" + body + b"\x00")
    frame = client.parser.feed(message["bytes"])[0]
    assert frame.body == body
    assert frame.headers["content-type"] == "application/octet-stream"
    assert frame.headers["content-length"] == str(len(body))


@pytest.mark.parametrize(
    ("body", "encoded"),
    [
        ({"price": 1.5, "ok": True}, '{"price":1.5,"ok":true}'),
        ([1, "two", None], '[1,"two",null]'),
        (
            {"when": datetime.date(2024, 1, 2), "amount": decimal.Decimal("1.10")},
            '{"when":"2024-01-02","amount":"1.10"}',
        ),
        ({"text": "ünï"}, '{"text":"\\u00fcn\\u00ef"}'),
    ],
)
async def test_any_other_body_is_json(client, body, encoded):
    await apush("/topic/p", body)
    message = await client.receive()
    assert message.headers["content-type"] == "application/json"
    assert message.body == encoded.encode()
    assert message.headers["content-length"] == str(len(encoded.encode()))
    assert json.loads(message.body) == json.loads(encoded)


async def test_a_body_that_is_not_json_serialisable_is_a_type_error():
    with pytest.raises(TypeError, match="JSON"):
        await apush("/topic/p", object())


async def test_an_explicit_content_type_wins(client):
    await apush("/topic/p", "<b>hi</b>", content_type="text/html")
    assert (await client.receive()).headers["content-type"] == "text/html"


def test_encode_body_picks_the_content_type():
    assert encode_body("x") == ("x", "text/plain;charset=utf-8")
    assert encode_body(bytearray(b"x")) == (b"x", "application/octet-stream")
    assert encode_body(memoryview(b"x")) == (b"x", "application/octet-stream")
    assert encode_body({"a": 1}) == ('{"a":1}', "application/json")
    assert encode_body("x", "text/csv") == ("x", "text/csv")


# -- headers -------------------------------------------------------------------------------------------------


async def test_custom_headers_are_forwarded(client):
    await apush("/topic/p", "x", headers={"x-trace": "abc", "priority": 9})
    message = await client.receive()
    assert (message.headers["x-trace"], message.headers["priority"]) == ("abc", "9")


@pytest.mark.parametrize("header", sorted(RESERVED_HEADERS))
async def test_a_push_cannot_set_a_header_the_server_sets(header):
    with pytest.raises(ValueError, match=header):
        await apush("/topic/p", "x", headers={header: "forged"})


@pytest.mark.parametrize("header", ["subscription", "message-id", "destination"])
async def test_a_user_push_cannot_set_a_header_the_server_sets(alice, header):
    with pytest.raises(ValueError, match=header):
        await apush_to_user(alice, "/queue/x", "x", headers={header: "forged"})


# -- MESSAGE frames ------------------------------------------------------------------------------------------


async def test_a_message_frame_has_destination_message_id_subscription_type_and_length(client):
    await apush("/topic/p", "abc")
    message = await client.receive()
    assert message.command == "MESSAGE"
    assert message.headers["destination"] == "/topic/p"
    assert message.headers["subscription"] == "sub-p"
    assert message.headers["message-id"]
    assert message.headers["content-type"] == "text/plain;charset=utf-8"
    assert message.headers["content-length"] == "3"


async def test_message_ids_are_unique_per_connection(client):
    await subscribe(client, "/topic/q", "sub-q")
    for n in range(20):
        await apush("/topic/p" if n % 2 else "/topic/q", str(n))
    ids = [(await client.receive()).headers["message-id"] for _ in range(20)]
    assert len(set(ids)) == 20


async def test_pushes_arrive_in_order(client):
    for n in range(50):
        await apush("/topic/p", str(n))
    assert [int((await client.receive()).body) for _ in range(50)] == list(range(50))


# -- destinations --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("destination", ["/user/queue/x", "/app/echo", "/queue/x", "/topic/", "prices"])
async def test_push_to_anything_but_a_topic_is_a_destination_error(destination):
    with pytest.raises(DestinationError):
        await apush(destination, "x")


def test_sync_push_to_a_non_topic_is_a_destination_error():
    with pytest.raises(DestinationError):
        push("/user/queue/x", "x")


# -- escaping per version ------------------------------------------------------------------------------------

AWKWARD = {"x-note": "a:b\nc\\d", "x-colon:name": "v"}


async def versioned(user, login, version: str):
    """A client of STOMP ``version`` subscribed to ``/topic/esc:aped`` (written as that version writes it)."""
    client = await connected(await sign_in(user, login), version)
    headers = {"id": "s1", "destination": "/topic/esc:aped", "receipt": "r"}
    await client.send_raw(encode(Frame("SUBSCRIBE", headers), version))
    assert (await client.receive()).command == "RECEIPT"
    return client


async def test_stomp_1_2_escapes_header_names_and_values(alice, login):
    client = await versioned(alice, login, "1.2")
    await apush("/topic/esc:aped", "x", headers={**AWKWARD, "x-cr": "a\rb"})
    text = (await raw_message(client))["text"]
    assert "\nx-note:a\\cb\\nc\\\\d\n" in text
    assert "\nx-colon\\cname:v\n" in text
    assert "\nx-cr:a\\rb\n" in text
    assert "\ndestination:/topic/esc\\caped\n" in text
    await client.close()


async def test_stomp_1_2_headers_read_back_as_pushed(alice, login):
    client = await versioned(alice, login, "1.2")
    await apush("/topic/esc:aped", "x", headers=AWKWARD)
    message = await client.receive()
    assert message.headers["x-note"] == AWKWARD["x-note"]
    assert message.headers["x-colon:name"] == "v"
    assert message.headers["destination"] == "/topic/esc:aped"
    await client.close()


async def test_stomp_1_1_escapes_colon_newline_and_backslash(alice, login):
    client = await versioned(alice, login, "1.1")
    await apush("/topic/esc:aped", "x", headers=AWKWARD)
    text = (await raw_message(client))["text"]
    assert "\nx-note:a\\cb\\nc\\\\d\n" in text
    assert "\nx-colon\\cname:v\n" in text
    assert "\ndestination:/topic/esc\\caped\n" in text
    await client.close()


async def test_stomp_1_0_does_not_escape_but_keeps_the_frame_well_formed(alice, login):
    client = await versioned(alice, login, "1.0")
    await apush("/topic/esc:aped", "x", headers=AWKWARD)
    text = (await raw_message(client))["text"]
    assert "\nx-note:a:b c\\d\n" in text  # 1.0 cannot carry a newline in a value
    assert "\ndestination:/topic/esc:aped\n" in text
    assert "\\c" not in text
    await client.close()


async def test_subscribers_of_different_versions_each_get_their_own_escaping(alice, bob, login):
    v10 = await versioned(alice, login, "1.0")
    v12 = await versioned(bob, login, "1.2")
    await apush("/topic/esc:aped", "x", headers={"x-note": "a:b"})
    assert "\nx-note:a:b\n" in (await raw_message(v10))["text"]
    assert "\nx-note:a\\cb\n" in (await raw_message(v12))["text"]
    await v10.close()
    await v12.close()


# -- sync API and push_to_user ---------------------------------------------------------------------------------


async def test_the_sync_push_works_from_sync_code(client):
    await database_sync_to_async(push)("/topic/p", {"from": "a view"})
    assert json.loads((await client.receive()).body) == {"from": "a view"}


async def test_the_sync_push_to_user_works_from_sync_code(alice, client):
    await subscribe(client, "/user/queue/notices", "n")
    await database_sync_to_async(push_to_user)(alice, "/queue/notices", "saved", headers={"x-kind": "info"})
    message = await client.receive()
    assert (message.headers["destination"], message.headers["subscription"]) == ("/user/queue/notices", "n")
    assert (message.body, message.headers["x-kind"]) == (b"saved", "info")


async def test_push_to_user_accepts_a_primary_key(alice, client):
    await subscribe(client, "/user/queue/notices", "n")
    await apush_to_user(alice.pk, "/user/queue/notices", b"\x01")
    message = await client.receive()
    assert (message.body, message.headers["content-type"]) == (b"\x01", "application/octet-stream")


async def test_a_push_with_no_subscriber_is_a_no_op():
    await apush("/topic/nobody-listens", "x")
