"""Errors: each one says what goes in the ERROR frame and which WebSocket close code follows it."""

from __future__ import annotations

import pytest

from django_stomp_push import stomp
from django_stomp_push.stomp import (
    FrameParser,
    FrameTooLarge,
    HeaderTooLong,
    LimitExceeded,
    Limits,
    MalformedFrame,
    ProtocolViolation,
    ServerConnection,
    StompError,
    TooManyHeaders,
    TooManyUnacknowledged,
    UnsupportedVersion,
)

PROTOCOL_ERROR, POLICY_VIOLATION, MESSAGE_TOO_BIG = 1002, 1008, 1009

CLOSE_CODES: dict[type[StompError], int] = {
    StompError: PROTOCOL_ERROR,
    MalformedFrame: PROTOCOL_ERROR,
    TooManyHeaders: PROTOCOL_ERROR,
    HeaderTooLong: PROTOCOL_ERROR,
    ProtocolViolation: PROTOCOL_ERROR,
    UnsupportedVersion: PROTOCOL_ERROR,
    # a client's own excess (subscriptions, transactions, frames in one) is a protocol error, as before
    LimitExceeded: PROTOCOL_ERROR,
    # the frame is too big to take in
    FrameTooLarge: MESSAGE_TOO_BIG,
    # raised when the server delivers: the server's policy, not a malformed client frame
    TooManyUnacknowledged: POLICY_VIOLATION,
}


@pytest.mark.parametrize(("error", "code"), CLOSE_CODES.items(), ids=lambda x: getattr(x, "__name__", str(x)))
def test_each_error_names_the_close_code_to_close_with(error: type[StompError], code: int) -> None:
    assert error.close_code == code


def test_every_error_of_the_protocol_has_its_close_code_specified_here() -> None:
    errors = {value for value in vars(stomp).values() if isinstance(value, type) and issubclass(value, StompError)}
    assert errors == set(CLOSE_CODES)


def test_a_frame_too_large_closes_with_1009() -> None:
    with pytest.raises(FrameTooLarge) as info:
        FrameParser(Limits(max_frame_size=16)).feed(b"SEND\ndestination:/q\n\n" + b"x" * 32 + b"\x00")
    assert info.value.close_code == MESSAGE_TOO_BIG


def test_a_client_over_its_subscription_limit_closes_with_1002() -> None:
    conn = ServerConnection(Limits(max_subscriptions=0))
    conn.receive_data(b"CONNECT\naccept-version:1.2\nhost:h\n\n\x00")
    with pytest.raises(LimitExceeded) as info:
        conn.receive_data(b"SUBSCRIBE\nid:1\ndestination:/topic/t\n\n\x00")
    assert info.value.close_code == PROTOCOL_ERROR


def test_an_error_carries_its_message_detail_and_receipt() -> None:
    error = ProtocolViolation("missing header", "SEND frame requires a 'destination' header", "r-1")
    assert (error.message, error.detail, error.receipt_id) == (
        "missing header",
        "SEND frame requires a 'destination' header",
        "r-1",
    )
    assert str(error) == "missing header: SEND frame requires a 'destination' header"


def test_an_unsupported_version_lists_the_supported_ones_in_its_error_headers() -> None:
    assert stomp.error_headers(UnsupportedVersion("2.0", ("1.1", "1.2"))) == {"version": "1.1,1.2"}
    assert stomp.error_headers(ProtocolViolation("x")) == {}
