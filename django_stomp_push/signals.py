"""Receivers that turn a Django session's end into closes of every connection bound to it.

- ``user_logged_out``: sent by ``logout()`` *before* the session is flushed, so the key is still known; covers
  every engine with a server-side store (db, cached_db, cache, file). Reason: ``logged out``.
- ``post_delete`` of the session model (db and cached_db engines): logout's flush, ``session.flush()``,
  deletes in the admin or the shell, and the old key of ``cycle_key()`` at login. Sent after the
  transaction commits, so a rolled-back delete closes nothing. Reason: ``session expired`` for a row past its
  expiry date, ``session ended`` otherwise. The flush that follows a logout sends nothing: the logout's
  broadcast has reached the same connections.

A broadcast holds the request at most ``LAYER_TIMEOUT`` seconds: when the channel layer hangs or fails, the
request goes on and the broadcast is retried in the background (see :func:`~.push.end_session`).

Connecting a ``post_delete`` receiver makes Django load rows before deleting them (no fast delete). That is
why ``expire_push_sessions`` deletes with raw batched deletes and broadcasts the closes itself.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import transaction
from django.utils import timezone

from .close_reasons import LOGGED_OUT, SESSION_ENDED, SESSION_EXPIRED
from .push import end_session, end_sessions

logger = logging.getLogger("django_stomp_push")


# The session key this thread's last logout broadcast ended: the flush that follows deletes its row.
_logged_out = threading.local()


def broadcast_ends(session_keys: list[str], reason: str) -> None:
    """:func:`~.push.end_session` (one key) or :func:`~.push.end_sessions` that never fails the request it runs in.

    The request waits at most ``LAYER_TIMEOUT``; a broadcast the channel layer has not taken by then is retried in
    the background, and if the layer stays unreachable the connections close at their next revalidation of the
    session store (``REVALIDATE_INTERVAL``).
    """
    try:
        if len(session_keys) == 1:
            end_session(session_keys[0], reason)
        else:
            end_sessions(session_keys, reason)
    except Exception:
        logger.exception(
            "django-stomp-push: could not broadcast %d session end(s) (%s); bound connections close "
            "at their next revalidation",
            len(session_keys),
            reason,
        )


def on_user_logged_out(sender: Any, request: Any = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        _logged_out.key = key
        broadcast_ends([key], LOGGED_OUT)


class _DeletedInTransaction:
    """Session keys deleted in one transaction, broadcast together when it commits.

    A bulk delete (``clearsessions``, an admin action) sends ``post_delete`` once per row inside one
    transaction; one broadcast per reason instead of one per row keeps such deletes from crawling.
    """

    def __init__(self) -> None:
        self.keys: dict[str, list[str]] = {}

    def add(self, key: str, reason: str) -> None:
        self.keys.setdefault(reason, []).append(key)

    def broadcast(self) -> None:
        for reason, keys in self.keys.items():
            broadcast_ends(keys, reason)
        self.keys = {}


def on_session_deleted(sender: Any, instance: Any, using: str = "default", **kwargs: Any) -> None:
    if instance.session_key == getattr(_logged_out, "key", None):
        _logged_out.key = None  # logout's flush: its connections are told already
        return
    expired = instance.expire_date is not None and instance.expire_date <= timezone.now()
    reason = SESSION_EXPIRED if expired else SESSION_ENDED
    connection = transaction.get_connection(using)
    pending: Any = getattr(connection, "_stomp_push_deleted", None)
    # A rolled-back transaction drops its on_commit callbacks: start a new batch when ours is no longer queued.
    queued = pending is not None and any(item[1] == pending.broadcast for item in connection.run_on_commit)
    if not queued:
        pending = connection._stomp_push_deleted = _DeletedInTransaction()
    pending.add(instance.session_key, reason)
    if not queued:
        transaction.on_commit(pending.broadcast, using=using)  # runs at once outside a transaction
