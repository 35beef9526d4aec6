"""What a connection knows of its session, and how it is read from a session's decoded data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase


@dataclass(frozen=True)
class SessionState:
    """What a connection knows of its session."""

    key: str
    expires_at: datetime | None
    """When the store will consider it expired; None when the engine cannot tell (cache, signed cookies)."""
    max_age: int | None
    """Seconds an extension adds; None for a session with an absolute expiry (``set_expiry(datetime)``)."""
    user_id: str | None
    #: The signed-in user as read with the session (None when not signed in), for the connection's CONNECT.
    user: Any = field(default=None, compare=False, repr=False)


def session_state(
    store: SessionBase, key: str, expires_at: datetime | None, data: dict[str, Any], user: Any = None
) -> SessionState:
    """The state of session ``key`` whose decoded data is ``data`` (``store``: a store of its engine), signed in
    as ``user``."""
    return SessionState(key, expires_at, _max_age(store, data), _user_id(data), user)


def _max_age(store: SessionBase, data: dict[str, Any]) -> int | None:
    expiry = data.get("_session_expiry")
    if isinstance(expiry, (str, datetime)):
        return None  # an absolute expiry is never extended
    # expiry given: the store computes the age from it alone and loads nothing
    return int(store.get_expiry_age(expiry=expiry))


def _user_id(data: dict[str, Any]) -> str | None:
    value = data.get(SESSION_KEY)
    return None if value is None else str(value)
