"""The server-side push API: to a ``/topic/`` destination, to every connection of a user, and session ends.

Each call is one channel-layer ``group_send``: with channels-redis it reaches the delivery hub of every server
process that has a subscriber (or a connection of that user, or of that session), and nothing else. Delivery is
at-most-once, like the channel layer under it. The sync versions work from views, signal receivers, Celery tasks
and ``manage.py shell``; from ``async`` code use the ``a``-prefixed coroutines.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync

from .conf import get_config
from .destinations import (
    HUBS_GROUP,
    DestinationError,
    Kind,
    classify,
    destination_group,
    session_group,
    session_hash,
    session_hashes,
    user_destination,
    user_group,
    user_hash,
)
from .layers import group_send

#: Headers the server sets on every MESSAGE; a push cannot override them.
RESERVED_HEADERS = frozenset(
    {"destination", "subscription", "message-id", "ack", "content-length", "content-type", "receipt", "transaction"}
)


def encode_body(body: Any, content_type: str | None = None) -> tuple[str | bytes, str]:
    """``str`` -> text/plain, ``bytes`` -> application/octet-stream, anything else -> JSON."""
    if isinstance(body, str):
        return body, content_type or "text/plain;charset=utf-8"
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), content_type or "application/octet-stream"
    try:
        text = json.dumps(body, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"push body must be str, bytes or JSON-serialisable: {exc}") from None
    return text, content_type or "application/json"


def _json_default(value: Any) -> Any:
    from django.core.serializers.json import DjangoJSONEncoder

    return DjangoJSONEncoder().default(value)


def _message(kind: str, destination: str, body: Any, headers: dict[str, str] | None, content_type: str | None):
    payload, ctype = encode_body(body, content_type)
    extra = {str(k): str(v) for k, v in (headers or {}).items()}
    clash = RESERVED_HEADERS.intersection(extra)
    if clash:
        raise ValueError(f"push headers cannot set {', '.join(sorted(clash))}: the server sets them")
    return {"type": kind, "destination": destination, "body": payload, "content_type": ctype, "headers": extra}


async def apush(
    destination: str, body: Any, headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> None:
    """Send ``body`` to every subscriber of the ``/topic/`` ``destination``, on every server."""
    if classify(destination) is not Kind.TOPIC:
        raise DestinationError(
            f"push() sends to {get_config().topic_prefix} destinations; use push_to_user() for {destination!r}"
        )
    await group_send(
        destination_group(destination), _message("stomp_push.message", destination, body, headers, content_type)
    )


async def apush_to_user(
    user: Any, destination: str, body: Any, headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> None:
    """Send ``body`` to every connection of ``user`` (instance or pk) subscribed to ``/user`` + ``destination``.

    ``destination`` is the user's view without the prefix (``"/queue/notices"``) or with it
    (``"/user/queue/notices"``); either way only that user's connections receive it.
    """
    key = user_hash(user)
    subscribed = user_destination(destination)
    message = _message("stomp_push.user_message", subscribed, body, headers, content_type)
    message["user"] = key
    await group_send(user_group(key), message)


async def aend_session(session_key: str, reason: str = "session ended") -> None:
    """Close every connection bound to ``session_key``, on every server: ERROR ``reason``, then close 1008."""
    key = session_hash(session_key)
    await group_send(session_group(key), {"type": "stomp_push.end_sessions", "sessions": [key], "reason": reason})


async def aend_sessions(session_keys: list[str], reason: str = "session expired") -> None:
    """Like :func:`aend_session` for many keys at once: one message to every hub (used by the ``post_delete``
    receiver and the sweep of file sessions)."""
    if session_keys:
        hashes = session_hashes(session_keys)
        await group_send(HUBS_GROUP, {"type": "stomp_push.end_sessions", "sessions": hashes, "reason": reason})


async def asessions_swept(reason: str = "session expired") -> None:
    """Tell every hub that expired sessions were deleted from the session table: each ends its connections whose
    session has no live row any more (``expire_push_sessions`` sends it after each commit)."""
    await group_send(HUBS_GROUP, {"type": "stomp_push.sessions_swept", "reason": reason})


def push(destination: str, body: Any, headers: dict[str, str] | None = None, *, content_type: str | None = None):
    """Synchronous :func:`apush`."""
    async_to_sync(apush)(destination, body, headers, content_type=content_type)


def push_to_user(
    user: Any, destination: str, body: Any, headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> None:
    """Synchronous :func:`apush_to_user`."""
    async_to_sync(apush_to_user)(user, destination, body, headers, content_type=content_type)


def end_session(session_key: str, reason: str = "session ended") -> None:
    """Synchronous :func:`aend_session`."""
    async_to_sync(aend_session)(session_key, reason)


def end_sessions(session_keys: list[str], reason: str = "session expired") -> None:
    """Synchronous :func:`aend_sessions`."""
    async_to_sync(aend_sessions)(session_keys, reason)
