"""The messages that cross the channel layer, in one place: their types, their shapes, and the hub channels.

The push API and the sweep command build them; each process's hub dispatches on their ``type``. Standard library
only, so that settings modules (``layer_config``) and the hub can both import it.
"""

from __future__ import annotations

from typing import Any

#: Every hub listens on one channel named with this prefix; ``layer_config`` gives those channels a capacity.
HUB_CHANNEL_PREFIX = "stomp_push.hub"
HUB_CHANNEL_CAPACITY = 10_000

TOPIC_MESSAGE = "stomp_push.message"
USER_MESSAGE = "stomp_push.user_message"
END_SESSIONS = "stomp_push.end_sessions"
SESSIONS_SWEPT = "stomp_push.sessions_swept"
#: A hub's message to itself on the pub/sub layer, to learn that the layer delivers (see listener.py).
PROBE = "stomp_push.probe"


def topic_message(destination: str, body: str | bytes, content_type: str, headers: dict[str, str]) -> dict[str, Any]:
    """A push to every subscriber of a ``/topic/`` destination."""
    return {
        "type": TOPIC_MESSAGE,
        "destination": destination,
        "body": body,
        "content_type": content_type,
        "headers": headers,
    }


def user_message(
    user_key: str, destination: str, body: str | bytes, content_type: str, headers: dict[str, str]
) -> dict[str, Any]:
    """A push to the connections of one user (``user_key``: its keyed hash) subscribed to ``destination``."""
    return {**topic_message(destination, body, content_type, headers), "type": USER_MESSAGE, "user": user_key}


def end_sessions(session_hashes: list[str], reason: str) -> dict[str, Any]:
    """Close every connection bound to one of these sessions (keyed hashes) with ERROR ``reason``."""
    return {"type": END_SESSIONS, "sessions": session_hashes, "reason": reason}


def sessions_swept(reason: str) -> dict[str, Any]:
    """Expired sessions were deleted: each hub checks its own connections' sessions."""
    return {"type": SESSIONS_SWEPT, "reason": reason}
