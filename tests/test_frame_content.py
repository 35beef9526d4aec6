"""What a handler's ``Message`` and the test client's ``ReceivedMessage`` show of their frame (``FrameContent``)."""

from __future__ import annotations

import pytest

from django_stomp_push.handlers import Message
from django_stomp_push.stomp import Frame, Send
from django_stomp_push.testing import ReceivedMessage

NOT_UTF8 = b"\xffok"


def test_a_received_message_shows_its_frames_headers_and_body_and_refuses_a_body_that_is_not_utf8() -> None:
    message = ReceivedMessage(Frame("MESSAGE", {"destination": "/topic/a", "x": "1"}, NOT_UTF8))
    assert message.headers == {"destination": "/topic/a", "x": "1"}
    assert message.body == NOT_UTF8
    assert ReceivedMessage(Frame("MESSAGE", {}, "é".encode())).text == "é"
    with pytest.raises(UnicodeDecodeError):
        message.text  # noqa: B018


def test_a_handlers_message_shows_its_sends_headers_and_body_and_replaces_bytes_that_are_not_utf8() -> None:
    message = Message(connection=None, frame=Send(destination="/app/a", headers={"x": "1"}, body=NOT_UTF8))
    assert message.headers == {"x": "1"}
    assert message.body == NOT_UTF8
    assert message.text == "\ufffdok"
