"""Session binding: read a Django session's state from its store, and extend it without resurrecting it.

A connection is bound to the session key it was opened with. It needs three things from the session store:
does the session still exist, when does it expire, and may it be extended. How to learn them depends on the
engine, so each family of engines is a class of :mod:`.engines` behind one interface (:class:`SessionEngine`):

=================  ===========================  ============================  ============================
engine             exists / expiry               extend (activity policy)      ended server-side by
=================  ===========================  ============================  ============================
db, cached_db      the row's ``expire_date``     conditional ``UPDATE``        ``post_delete``, logout, sweep
file               file mtime + age              ``os.utime`` if unexpired     logout, expiry timer
cache              entry present; expiry n/a     ``cache.touch``               logout, revalidation
signed_cookies     signature and age only        not possible                  cannot be ended server-side
other (custom)     ``load()``; expiry n/a        not possible                  logout, revalidation
=================  ===========================  ============================  ============================

The functions below are the interface the rest of the package uses; each is one call into the engine object of
the configured ``SESSION_ENGINE`` (chosen once per value of the setting). Everything here is synchronous and may
hit the database: call it through ``database_sync_to_async``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from importlib import import_module
from typing import Any, cast

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.signals import setting_changed

from .engines import SessionEngine, engine_for
from .state import SessionState

__all__ = [
    "SessionEngine",
    "SessionState",
    "can_extend",
    "engine_name",
    "extend_session",
    "extend_sessions",
    "read_session",
    "read_sessions",
    "session_engine",
    "store_class",
    "swept_keys",
]


def session_engine() -> SessionEngine:
    """The engine object of the configured ``SESSION_ENGINE``; ImportError (or another error of the import) when
    it cannot be imported (system check ``stomp_push.E003``)."""
    return _engine_of(settings.SESSION_ENGINE)


@lru_cache(maxsize=4)
def _engine_of(path: str) -> SessionEngine:
    return engine_for(import_module(path).SessionStore)


def _reset(setting: str, **kwargs: Any) -> None:
    if setting == "SESSION_ENGINE":
        _engine_of.cache_clear()


setting_changed.connect(_reset, dispatch_uid="django_stomp_push.sessions")


def engine_name() -> str:
    """The last part of ``SESSION_ENGINE`` ("db", "cached_db", "cache", "file", "signed_cookies", ...)."""
    return cast(str, settings.SESSION_ENGINE).rsplit(".", 1)[-1]


def store_class() -> type[SessionBase]:
    """The ``SessionStore`` class of the configured ``SESSION_ENGINE``."""
    return session_engine().store_class


def read_session(session_key: str | None) -> SessionState | None:
    """The state of the session ``session_key``, or None if it does not exist or has expired."""
    if not session_key:
        return None
    return session_engine().read(session_key)


def read_sessions(session_keys: Iterable[str]) -> dict[str, SessionState | None]:
    """:func:`read_session` of many sessions at once (one query for them all with the db engines), by key."""
    keys = list(session_keys)
    states = session_engine().read_many(key for key in keys if key)
    return {key: states.get(key) for key in keys}


def extend_session(state: SessionState) -> datetime | None:
    """Push the session's expiry to now + its age, only if it still exists and is unexpired.

    Returns the new expiry, or None when nothing was extended (gone, expired, absolute expiry, or an engine that
    cannot be extended). Never resurrects a session deleted meanwhile (see :meth:`SessionEngine.extend`).
    """
    return session_engine().extend(state)


def extend_sessions(states: Iterable[SessionState]) -> dict[str, datetime | None]:
    """:func:`extend_session` of many sessions at once, by key (one ``UPDATE`` for them all with the db engines,
    when they share an age)."""
    return session_engine().extend_many(states)


def swept_keys(session_keys: list[str]) -> set[str]:
    """Which of ``session_keys`` have no live row in the session table (deleted, or expired and awaiting the sweep).

    For the db and cached_db engines, whose rows ``expire_push_sessions`` deletes; empty for the others.
    """
    if not session_keys:
        return set()
    return session_engine().swept_keys(session_keys)


def can_extend() -> bool:
    """Whether the configured engine supports :func:`extend_session`."""
    return session_engine().can_extend
