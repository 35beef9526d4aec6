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
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013

#: The ``reconnect`` header of every ERROR frame before a close: what a client should do next.
RECONNECT_NEVER = "never"  # the session is gone or the client broke a rule: retrying the same way fails again
RECONNECT_LATER = "later"  # the server asks for a pause: retry after the ``retry-after`` header's milliseconds
RECONNECT_NOW = "now"  # something transient: retry, with the client's usual (jittered) backoff

_RECONNECT_BY_CODE = {
    CLOSE_PROTOCOL_ERROR: RECONNECT_NEVER,
    CLOSE_POLICY_VIOLATION: RECONNECT_NEVER,
    CLOSE_TOO_BIG: RECONNECT_NEVER,
    CLOSE_SERVER_ERROR: RECONNECT_NOW,
    CLOSE_SERVICE_RESTART: RECONNECT_LATER,
    CLOSE_TRY_AGAIN_LATER: RECONNECT_LATER,
}


def reconnect_for(code: int) -> str:
    """What a close with ``code`` tells the client by default (a close site may say otherwise: a heart-beat
    timeout is a policy close after which reconnecting at once is right)."""
    return _RECONNECT_BY_CODE.get(code, RECONNECT_NOW)


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
