"""Receivers that turn a Django session's end into closes of every connection bound to it.

- ``user_logged_out``: sent by ``logout()`` *before* the session is flushed, so the key is still known; covers
  every engine with a server-side store (db, cached_db, cache, file). Reason: ``logged out``.
- ``post_delete`` of the session model (db and cached_db engines): logout's flush, ``session.flush()``,
  deletes in the admin or the shell, and the old key of ``cycle_key()`` at login. Sent after the
  transaction commits, so a rolled-back delete closes nothing. Reason: ``session expired`` for a row past its
  expiry date, ``session ended`` otherwise.

Connecting a ``post_delete`` receiver makes Django load rows before deleting them (no fast delete). That is
why ``expire_push_sessions`` deletes with raw batched deletes and broadcasts the closes itself.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from .consumer import LOGGED_OUT, SESSION_ENDED, SESSION_EXPIRED
from .push import end_session, end_sessions

logger = logging.getLogger("django_stomp_push")


def broadcast_end(session_key: str, reason: str) -> None:
    """:func:`~.push.end_session` that never fails the request it runs in.

    If the channel layer is unreachable, the logout still succeeds; the connections close at their next
    revalidation of the session store (``REVALIDATE_INTERVAL``).
    """
    try:
        end_session(session_key, reason)
    except Exception:
        logger.exception(
            "django-stomp-push: could not broadcast a session end (%s); bound connections close "
            "at their next revalidation",
            reason,
        )


def on_user_logged_out(sender: Any, request: Any = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        broadcast_end(key, LOGGED_OUT)


class _DeletedInTransaction:
    """Session keys deleted in one transaction, broadcast together when it commits.

    A bulk delete (``clearsessions``, an admin action) sends ``post_delete`` once per row inside one
    transaction; one broadcast per batch instead of one per row keeps such deletes from crawling.
    """

    BATCH = 1000

    def __init__(self) -> None:
        self.keys: dict[str, list[str]] = {}

    def add(self, key: str, reason: str) -> None:
        self.keys.setdefault(reason, []).append(key)

    def broadcast(self) -> None:
        for reason, keys in self.keys.items():
            if len(keys) == 1:
                broadcast_end(keys[0], reason)
                continue
            for start in range(0, len(keys), self.BATCH):
                try:
                    end_sessions(keys[start : start + self.BATCH], reason)
                except Exception:
                    logger.exception("django-stomp-push: could not broadcast %d session ends", len(keys))
        self.keys = {}


def on_session_deleted(sender: Any, instance: Any, using: str = "default", **kwargs: Any) -> None:
    expired = instance.expire_date is not None and instance.expire_date <= timezone.now()
    reason = SESSION_EXPIRED if expired else SESSION_ENDED
    connection = transaction.get_connection(using)
    pending = getattr(connection, "_stomp_push_deleted", None)
    # A rolled-back transaction drops its on_commit callbacks: start a new batch when ours is no longer queued.
    queued = pending is not None and any(item[1] == pending.broadcast for item in connection.run_on_commit)
    if not queued:
        pending = connection._stomp_push_deleted = _DeletedInTransaction()
    pending.add(instance.session_key, reason)
    if not queued:
        transaction.on_commit(pending.broadcast, using=using)  # runs at once outside a transaction
