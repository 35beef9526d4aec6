"""Let daphne send the close code and reason the application asked for.

daphne closes a WebSocket through autobahn's ``sendClose()``, which refuses every code but 1000 and 3000-4999
(so ``{"type": "websocket.close", "code": 1008}`` raises inside daphne and the client sees 1006), and daphne
drops the ASGI close ``reason`` (daphne#374, autobahn#1642). A session-bound push connection exists to tell its
client *why* it closed, so on start-up (``AppConfig.ready``) :func:`install` wraps daphne's reply handler to send
the close frame itself, with the code and reason from the ASGI message. Codes are still checked against
RFC 6455 §7.4; everything else goes to daphne's own handler.
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_django_stomp_push_close"

#: Close codes an endpoint may send (RFC 6455 §7.4.1 and the IANA registry), besides 3000-4999.
SENDABLE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))

#: A close frame's payload is at most 125 bytes (RFC 6455 §5.5): two for the code, 123 for the reason.
MAX_REASON_BYTES = 123


def sendable(code: object) -> bool:
    """May a server send ``code`` in a close frame?"""
    return isinstance(code, int) and (code in SENDABLE_CODES or 3000 <= code <= 4999)


def reason_bytes(reason: object) -> bytes:
    """``reason`` as UTF-8, cut to 123 bytes on a character boundary (a split character would make the close
    frame invalid UTF-8, and the client would fail the connection instead of reading the reason)."""
    if not isinstance(reason, str):
        return b""
    return reason.encode("utf-8")[:MAX_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")


def install() -> bool:
    """Wrap ``daphne.ws_protocol.WebSocketProtocol.handle_reply``; returns False when daphne is absent."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return False
    if getattr(WebSocketProtocol.handle_reply, _PATCHED, False):
        return True
    original = WebSocketProtocol.handle_reply

    def handle_reply(self: Any, message: dict[str, Any]) -> Any:
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            code = message.get("code") or 1000
            if sendable(code):
                reason = reason_bytes(message.get("reason"))
                self.sendCloseFrame(code=code, reasonUtf8=reason or None, isReply=False)
                return None
        return original(self, message)

    setattr(handle_reply, _PATCHED, True)
    WebSocketProtocol.handle_reply = handle_reply
    return True
