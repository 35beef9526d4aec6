"""The server-side push API: to a ``/topic/`` destination, to every connection of a user, and session ends.

Each call is one channel-layer ``group_send``: with channels-redis it reaches the delivery hub of every server
process that has a subscriber (or a connection of that user, or of that session), and nothing else. Delivery is
at-most-once, like the channel layer under it.

The sync versions work from views, signal receivers, Celery tasks and ``manage.py shell``; from ``async`` code
use the ``a``-prefixed coroutines (a sync version called in an event loop's thread raises RuntimeError). The sync
versions send from one event loop per process (:mod:`~django_stomp_push.sync_layer`) and wait for the channel
layer at most ``LAYER_TIMEOUT`` seconds, so a hung Redis cannot hold a request:

- :func:`push` and :func:`push_to_user` then cancel the push and raise ``TimeoutError``;
- :func:`end_session` and :func:`end_sessions` return False and keep trying in the background, so that a logout
  during a Redis stall still closes its connections when Redis answers again.

The ``a``-prefixed coroutines wait as long as the layer takes (channels-redis: up to its ``socket_timeout``);
bound them with ``asyncio.timeout()`` where that matters.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable
from typing import Any

from . import layer_messages, sync_layer
from .close_reasons import SESSION_ENDED, SESSION_EXPIRED
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
from .layers import get_layer, group_send, is_process_local, local_receivers, send_in_order

logger = logging.getLogger("django_stomp_push")

#: Headers the server sets on every MESSAGE; a push cannot override them.
RESERVED_HEADERS = frozenset(
    {"destination", "subscription", "message-id", "ack", "content-length", "content-type", "receipt", "transaction"}
)

#: Session keys per ``end_sessions`` message: a bulk delete becomes a few messages, none of them huge.
END_SESSIONS_BATCH = 1000


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


def _payload(
    body: Any, headers: dict[str, str] | None, content_type: str | None
) -> tuple[str | bytes, str, dict[str, str]]:
    """(body, content type, headers) of a push, checked."""
    payload, ctype = encode_body(body, content_type)
    extra = {str(k): str(v) for k, v in (headers or {}).items()}
    clash = RESERVED_HEADERS.intersection(extra)
    if clash:
        raise ValueError(f"push headers cannot set {', '.join(sorted(clash))}: the server sets them")
    for name, value in extra.items():
        if not name:
            raise ValueError("push headers cannot have an empty name")
        if "\x00" in name or "\x00" in value:
            # NUL ends a STOMP frame: the rest of the header would be read as the next frame.
            raise ValueError(f"push header {name!r} contains a NUL character, which would end the STOMP frame")
    return payload, ctype, extra


def _topic_push(
    destination: str, body: Any, headers: dict[str, str] | None, content_type: str | None
) -> tuple[str, dict[str, Any]]:
    """(group, message) of a push to a ``/topic/`` destination."""
    if classify(destination) is not Kind.TOPIC:
        raise DestinationError(
            f"push() sends to {get_config().topic_prefix} destinations; use push_to_user() for {destination!r}"
        )
    return destination_group(destination), layer_messages.topic_message(
        destination, *_payload(body, headers, content_type)
    )


def _user_push(
    user: Any, destination: str, body: Any, headers: dict[str, str] | None, content_type: str | None
) -> tuple[str, dict[str, Any]]:
    """(group, message) of a push to a user's connections."""
    key = user_hash(user)
    return user_group(key), layer_messages.user_message(
        key, user_destination(destination), *_payload(body, headers, content_type)
    )


def _session_end(session_key: str, reason: str) -> tuple[str, dict[str, Any]]:
    key = session_hash(session_key)
    return session_group(key), layer_messages.end_sessions([key], reason)


def session_end_messages(session_keys: list[str], reason: str) -> list[tuple[str, dict[str, Any]]]:
    """(group, message) pairs that end every connection bound to ``session_keys``: one message to every hub per
    :data:`END_SESSIONS_BATCH` keys (what :func:`end_sessions` sends; the file sweep sends them too)."""
    hashes = session_hashes(session_keys)
    return [
        (HUBS_GROUP, layer_messages.end_sessions(hashes[i : i + END_SESSIONS_BATCH], reason))
        for i in range(0, len(hashes), END_SESSIONS_BATCH)
    ]


#: The process that logged :func:`_warn_if_local_only`'s warning (once per process, forks included).
_warned_local_only: int | None = None


def _warn_if_local_only(caller: str) -> None:
    """Warn once per process when a push cannot leave it: the in-memory channel layer and no delivery hub here,
    as for a push from ``manage.py shell`` or a management command while the server is another process."""
    global _warned_local_only
    if _warned_local_only == os.getpid():
        return
    alias = get_config().channel_layer
    if not is_process_local(get_layer(alias)) or local_receivers(alias):
        return
    _warned_local_only = os.getpid()
    logger.warning(
        "django-stomp-push: %s() reaches only this process: the channel layer %r is the in-memory one "
        "(channels.layers.InMemoryChannelLayer) and no STOMP connection was made in this process. A server in "
        "another process (this one being a shell, a management command or a worker) gets none of its pushes. "
        "Use channels-redis in every process: CHANNEL_LAYERS = {%r: layer_config(REDIS_URL)} with "
        "django_stomp_push.redis.layer_config. (Logged once per process.)",
        caller,
        alias,
        alias,
    )


async def apush(
    destination: str, body: Any, headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> None:
    """Send ``body`` to every subscriber of the ``/topic/`` ``destination``, on every server.

    ``headers`` are added to the MESSAGE frame (names and values as ``str``); ValueError for a header the server
    sets itself, an empty name, or a NUL character in a name or value.
    """
    await group_send(*_topic_push(destination, body, headers, content_type))


def start_push(
    destination: str, body: Any, headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> Awaitable[None] | None:
    """Start :func:`apush` behind the earlier pushes of this event loop without waiting for it: None when it is
    done already, else an awaitable that ends when the channel layer took it (see ``layers.send_in_order``)."""
    return send_in_order(*_topic_push(destination, body, headers, content_type))


async def apush_to_user(
    user: Any, destination: str, body: Any, headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> None:
    """Send ``body`` to every connection of ``user`` (instance or pk) subscribed to ``/user`` + ``destination``.

    ``destination`` is the user's view without the prefix (``"/queue/notices"``) or with it
    (``"/user/queue/notices"``); either way only that user's connections receive it. ``headers`` as for
    :func:`apush`.
    """
    await group_send(*_user_push(user, destination, body, headers, content_type))


async def aend_session(session_key: str, reason: str = SESSION_ENDED) -> None:
    """Close every connection bound to ``session_key``, on every server: ERROR ``reason``, then close 1008."""
    await group_send(*_session_end(session_key, reason))


async def aend_sessions(session_keys: list[str], reason: str = SESSION_EXPIRED) -> None:
    """Like :func:`aend_session` for many keys at once: one message to every hub per
    :data:`END_SESSIONS_BATCH` keys (used by the ``post_delete`` receiver and the sweep of file sessions)."""
    for group, message in session_end_messages(session_keys, reason):
        await group_send(group, message)


async def asessions_swept(reason: str = SESSION_EXPIRED) -> None:
    """Tell every hub that expired sessions were deleted from the session table: each ends its connections whose
    session has no live row any more (``expire_push_sessions`` sends it after each commit)."""
    await group_send(HUBS_GROUP, layer_messages.sessions_swept(reason))


def push(
    destination: str, body: Any, headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> None:
    """Synchronous :func:`apush`; waits for the channel layer at most ``LAYER_TIMEOUT`` seconds.

    Raises ``TimeoutError`` (naming the channel layer and ``LAYER_TIMEOUT``) when the layer does not take the push
    in time. The push is then cancelled, not retried: a late push is often a wrong one (a price, a progress
    count), and the caller decides whether to send it again. A push the layer had already taken in part before
    the cancel may still arrive, so treat the error as "unknown", not "not delivered". A channel-layer error
    (e.g. ``ConnectionError`` while Redis is down) is raised as it is.
    """
    group, message = _topic_push(destination, body, headers, content_type)
    _warn_if_local_only("push")
    sync_layer.send(group, message, caller="push")


def push_to_user(
    user: Any, destination: str, body: Any, headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> None:
    """Synchronous :func:`apush_to_user`; waits at most ``LAYER_TIMEOUT`` seconds, as :func:`push`."""
    group, message = _user_push(user, destination, body, headers, content_type)
    _warn_if_local_only("push_to_user")
    sync_layer.send(group, message, caller="push_to_user")


def end_session(session_key: str, reason: str = SESSION_ENDED) -> bool:
    """Synchronous :func:`aend_session`; waits for the channel layer at most ``LAYER_TIMEOUT`` seconds.

    Returns True when the close was sent within that time. Otherwise (the layer hangs or fails) it returns False
    and the close is not lost: it is retried in the background until it is sent, for up to
    ``REVALIDATE_INTERVAL`` seconds, after which every bound connection has re-read the session store and closed
    by itself. One line is logged if it was sent late or not at all.
    """
    return sync_layer.send_persistently(
        [_session_end(session_key, reason)], caller="end_session", what=f"a session end ({reason})"
    )


def end_sessions(session_keys: list[str], reason: str = SESSION_EXPIRED) -> bool:
    """Synchronous :func:`aend_sessions`; waits at most ``LAYER_TIMEOUT`` seconds and keeps trying in the
    background, as :func:`end_session`."""
    if not session_keys:
        return True
    return sync_layer.send_persistently(
        session_end_messages(session_keys, reason),
        caller="end_sessions",
        what=f"{len(session_keys)} session ends ({reason})",
    )
