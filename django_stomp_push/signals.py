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
from .push import end_session

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


def on_session_deleted(sender: Any, instance: Any, using: str = "default", **kwargs: Any) -> None:
    key = instance.session_key
    expired = instance.expire_date is not None and instance.expire_date <= timezone.now()
    reason = SESSION_EXPIRED if expired else SESSION_ENDED
    transaction.on_commit(lambda: broadcast_end(key, reason), using=using)
