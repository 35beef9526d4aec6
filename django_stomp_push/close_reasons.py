"""Why a connection closes, as a client sees it: WebSocket close codes and the reasons a session ends.

Every module that closes a connection, or asks another process to, names the reason from here: the consumer, the
logout and delete receivers, the sweep command and the push API. Standard library only.
"""

from __future__ import annotations

#: WebSocket close codes (RFC 6455 §7.4.1).
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011

#: ERROR ``message`` texts when the bound Django session ends.
SESSION_ENDED = "session ended"
SESSION_EXPIRED = "session expired"
LOGGED_OUT = "logged out"

_SESSION_END_DETAILS = {
    SESSION_EXPIRED: "your Django session expired; log in again",
    LOGGED_OUT: "you logged out (perhaps in another tab); log in again",
}


def session_end_detail(reason: str) -> str:
    """The ERROR body that explains a session end with ``reason`` (any reason: ``end_session()`` takes yours)."""
    return _SESSION_END_DETAILS.get(reason, "your Django session ended; log in again")
