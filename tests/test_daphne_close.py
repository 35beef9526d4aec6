"""On daphne, a close from the application reaches the client with its code and reason (daphne alone sends 1006
for 1008 and drops every reason): django_stomp_push.daphne.close wraps daphne's reply handler."""

from __future__ import annotations

import pytest
from daphne.ws_protocol import WebSocketProtocol

from django_stomp_push.daphne.close import install, reason_bytes, sendable


class Recorded(WebSocketProtocol):
    """daphne's protocol with the wrapped handler, recording what it would send instead of sending it."""

    def __init__(self, state: int) -> None:
        super().__init__()
        self.state = state
        self.calls: list[tuple] = []

    def sendCloseFrame(self, code=None, reasonUtf8=None, isReply=False):
        self.calls.append(("close frame", code, reasonUtf8, isReply))

    def serverClose(self, code=None):
        self.calls.append(("daphne's close", code))

    def serverReject(self):
        self.calls.append(("daphne's reject",))

    def serverSend(self, content, binary=False):
        self.calls.append(("daphne's send", content))


@pytest.fixture(autouse=True)
def _installed():
    assert install()


def reply(message: dict, state: int = WebSocketProtocol.STATE_OPEN) -> list[tuple]:
    protocol = Recorded(state)
    protocol.handle_reply(message)
    return protocol.calls


def test_install_wraps_daphne_once():
    handler = WebSocketProtocol.handle_reply
    assert install() and WebSocketProtocol.handle_reply is handler


def test_a_close_with_1008_and_a_reason_sends_both():
    calls = reply({"type": "websocket.close", "code": 1008, "reason": "logged out"})
    assert calls == [("close frame", 1008, b"logged out", False)]


def test_a_close_without_a_code_is_a_normal_closure_without_a_reason():
    assert reply({"type": "websocket.close"}) == [("close frame", 1000, None, False)]


def test_an_application_code_is_sent():
    assert reply({"type": "websocket.close", "code": 4001}) == [("close frame", 4001, None, False)]


def test_the_reason_is_cut_to_123_bytes_on_a_character_boundary():
    calls = reply({"type": "websocket.close", "code": 1008, "reason": "é" * 100})
    assert calls == [("close frame", 1008, "é".encode() * 61, False)]  # 122 bytes: a 124th would split an "é"


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2999, 5000])
def test_a_code_a_server_may_not_send_goes_to_daphne(code):
    assert reply({"type": "websocket.close", "code": code, "reason": "x"}) == [("daphne's close", code)]


def test_a_close_before_accept_stays_daphnes_http_403():
    calls = reply({"type": "websocket.close", "code": 1008}, state=WebSocketProtocol.STATE_CONNECTING)
    assert calls == [("daphne's reject",)]


def test_other_messages_go_to_daphne():
    assert reply({"type": "websocket.send", "text": "hi"}) == [("daphne's send", "hi")]


def test_sendable_codes_follow_rfc_6455():
    assert [c for c in range(900, 5100) if sendable(c)] == [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, *range(3000, 5000)
    ]  # fmt: skip
    assert not sendable("1008") and not sendable(None)


def test_reason_bytes_ignores_what_is_not_a_string():
    assert reason_bytes(None) == reason_bytes(b"bytes") == b""
    assert reason_bytes("x" * 200) == b"x" * 123
