"""What the relay and the server processes say to each other: every line, cut anywhere, and what is refused."""

from __future__ import annotations

import pytest

from django_stomp_push.relay import wire

STREAM = (
    wire.subscribed(b"asgi__group__stomp_push.d.abc")
    + wire.message(b"asgistomp_push.hub.1f", b"line one\nMSG x 3\n\x00\xff")
    + wire.RESET
    + wire.message(b"asgi__group__g", b"")
    + wire.error("too slow:\nover 10 bytes")
)
EXPECTED = [
    (b"OK", b"asgi__group__stomp_push.d.abc", None),
    (b"MSG", b"asgistomp_push.hub.1f", b"line one\nMSG x 3\n\x00\xff"),
    (b"RESET", b"", None),
    (b"MSG", b"asgi__group__g", b""),
    (b"ERR", b"too slow: over 10 bytes", None),
]


def test_a_stream_of_every_relay_line_reads_back_in_one_piece() -> None:
    assert wire.Reader(wire.FROM_RELAY).feed(STREAM) == EXPECTED


def test_the_same_stream_fed_one_byte_at_a_time_reads_back_the_same() -> None:
    reader = wire.Reader(wire.FROM_RELAY)
    out = []
    for index in range(len(STREAM)):
        out += reader.feed(STREAM[index : index + 1])
    assert out == EXPECTED


def test_a_server_process_subscribes_and_unsubscribes() -> None:
    data = wire.subscribe("asgi__group__a") + wire.unsubscribe("asgi__group__a")
    assert wire.Reader(wire.FROM_SERVER).feed(data) == [
        (b"SUB", b"asgi__group__a", None),
        (b"UNSUB", b"asgi__group__a", None),
    ]


@pytest.mark.parametrize("name", ["", "has space", "caf\u00e9", "new\nline", "x" * (wire.MAX_CHANNEL + 1)])
def test_a_channel_that_is_not_a_channel_name_is_not_sent(name: str) -> None:
    with pytest.raises(wire.WireError):
        wire.subscribe(name)


@pytest.mark.parametrize(
    "data",
    [
        b"SUB has space\n",  # a space in the channel
        b"SUB \n",  # no channel
        b"MSG asgi__group__a 12x\n",  # a length that is not a number
        b"MSG asgi__group__a %d\n" % (wire.MAX_PAYLOAD + 1),  # a payload over the limit
        b"HELLO there\n",  # a command this end does not take
        b"SUB " + b"a" * 400,  # a line over the limit, not yet ended
    ],
)
def test_a_malformed_line_ends_the_connection(data: bytes) -> None:
    reader = wire.Reader(wire.FROM_SERVER | wire.FROM_RELAY)
    with pytest.raises(wire.WireError):
        reader.feed(data)


def test_a_server_process_cannot_send_what_only_the_relay_sends() -> None:
    with pytest.raises(wire.WireError, match="unknown command"):
        wire.Reader(wire.FROM_SERVER).feed(wire.message(b"asgi__group__a", b"forged"))


def test_an_error_text_stays_one_escaped_line() -> None:
    line = wire.error("bad \u00e9\nMSG forged 1\nx")
    assert line.count(b"\n") == 1 and line.isascii()
    assert wire.Reader(wire.FROM_RELAY).feed(line) == [(b"ERR", b"bad \\xe9 MSG forged 1 x", None)]
