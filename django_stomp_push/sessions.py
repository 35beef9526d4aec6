"""Session binding: read a Django session's state from its store, and extend it without resurrecting it.

A connection is bound to the session key it was opened with. It needs three things from the session store:
does the session still exist, when does it expire, and may it be extended. How to learn them depends on the
engine:

=================  ===========================  ============================  ============================
engine             exists / expiry               extend (activity policy)      ended server-side by
=================  ===========================  ============================  ============================
db, cached_db      the row's ``expire_date``     conditional ``UPDATE``        ``post_delete``, logout, sweep
file               file mtime + age              ``os.utime`` if unexpired     logout, expiry timer
cache              entry present; expiry n/a     ``cache.touch``               logout, revalidation
signed_cookies     signature and age only        not possible                  cannot be ended server-side
=================  ===========================  ============================  ============================

Everything here is synchronous and may hit the database: call it through ``database_sync_to_async``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import router
from django.utils import timezone
from django.utils.crypto import constant_time_compare


@dataclass(frozen=True)
class SessionState:
    """What a connection knows of its session."""

    key: str
    expires_at: datetime | None
    """When the store will consider it expired; None when the engine cannot tell (cache, signed cookies)."""
    max_age: int | None
    """Seconds an extension adds; None for a session with an absolute expiry (``set_expiry(datetime)``)."""
    user_id: str | None


def engine_name() -> str:
    """The last part of ``SESSION_ENGINE`` ("db", "cached_db", "cache", "file", "signed_cookies", ...)."""
    return settings.SESSION_ENGINE.rsplit(".", 1)[-1]


def store_class() -> type[SessionBase]:
    return import_module(settings.SESSION_ENGINE).SessionStore


def _is_db_store(cls: type[SessionBase]) -> bool:
    from django.contrib.sessions.backends.db import SessionStore as DbStore

    return issubclass(cls, DbStore)


def _is_file_store(cls: type[SessionBase]) -> bool:
    from django.contrib.sessions.backends.file import SessionStore as FileStore

    return issubclass(cls, FileStore)


def _max_age(store: SessionBase, data: dict[str, Any]) -> int | None:
    expiry = data.get("_session_expiry")
    if isinstance(expiry, (str, datetime)):
        return None  # an absolute expiry is never extended
    return int(store.get_expiry_age(expiry=expiry))


def _signed_in_user_still_valid(data: dict[str, Any]) -> bool:
    """What ``django.contrib.auth.get_user`` checks on every HTTP request, for a connection that makes none.

    False when the session's user no longer exists (or its backend is gone) or when the session's auth hash no
    longer matches: the password changed, so Django ends every other session of that user at its next request.
    A session without a signed-in user is valid as far as auth is concerned.
    """
    if SESSION_KEY not in data:
        return True
    backend_path = data.get(BACKEND_SESSION_KEY)
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return False
    try:
        user_id = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
    except ValidationError:
        return False
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return False
    if not hasattr(user, "get_session_auth_hash"):
        return True
    session_hash = data.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    fallbacks = getattr(user, "get_session_auth_fallback_hash", list)()
    return any(constant_time_compare(session_hash, fallback) for fallback in fallbacks)


def _user_id(data: dict[str, Any]) -> str | None:
    value = data.get(SESSION_KEY)
    return None if value is None else str(value)


def swept_keys(session_keys: list[str]) -> set[str]:
    """Which of ``session_keys`` have no live row in the session table (deleted, or expired and awaiting the sweep).

    One query per call (the hub asks per 1,000 keys). For the db and cached_db engines only, whose rows
    ``expire_push_sessions`` deletes; empty for the others.
    """
    cls = store_class()
    if not session_keys or not _is_db_store(cls):
        return set()
    model = cls.get_model_class()
    live = model.objects.using(router.db_for_read(model)).filter(
        session_key__in=session_keys, expire_date__gt=timezone.now()
    )
    return set(session_keys).difference(live.values_list("session_key", flat=True))


def read_session(session_key: str | None) -> SessionState | None:
    """The state of the session ``session_key``, or None if it does not exist or has expired."""
    if not session_key:
        return None
    cls = store_class()
    store = cls(session_key)
    now = timezone.now()
    if _is_db_store(cls):
        row = (
            cls.get_model_class()
            .objects.filter(session_key=session_key, expire_date__gt=now)
            .values_list("expire_date", "session_data")
            .first()
        )
        if row is None:
            return None
        expires_at, encoded = row
        data = store.decode(encoded)
        if not _signed_in_user_still_valid(data):
            return None
        return SessionState(session_key, expires_at, _max_age(store, data), _user_id(data))
    data, valid = _load_without_create(store)
    if not valid or not _signed_in_user_still_valid(data):
        return None
    expires_at: datetime | None = None
    if _is_file_store(cls):
        mtime = datetime.fromtimestamp(os.path.getmtime(store._key_to_file()), tz=timezone.get_current_timezone())
        expires_at = store.get_expiry_date(modification=mtime, expiry=data.get("_session_expiry"))
    elif isinstance(data.get("_session_expiry"), str):
        expires_at = datetime.fromisoformat(data["_session_expiry"])
    return SessionState(session_key, expires_at, _max_age(store, data), _user_id(data))


def _load_without_create(store: SessionBase) -> tuple[dict[str, Any], bool]:
    """``store.load()`` without its side effect of creating a fresh session when the old one is invalid.

    The file engine deletes an expired session file and creates a new empty one; signed cookies with a bad
    signature "create" a new session too; the cache engine resets the key of a missing session. Any of these
    means the session the connection was bound to is gone. (Django's own ``clear_expired`` neuters ``create``
    in the same way.)
    """
    created: list[bool] = []
    store.create = lambda: created.append(True)  # type: ignore[method-assign]
    data = store.load()
    return data, store.session_key is not None and not created


def extend_session(state: SessionState) -> datetime | None:
    """Push the session's expiry to now + its age, only if it still exists and is unexpired.

    Returns the new expiry, or None when nothing was extended (gone, expired, absolute expiry, or an engine that
    cannot be extended). Never saves the session object: a plain ``save()`` could resurrect a session deleted
    meanwhile or overwrite data an HTTP request just wrote.
    """
    if state.max_age is None:
        return None
    cls = store_class()
    now = timezone.now()
    new_expiry = now + timedelta(seconds=state.max_age)
    if _is_db_store(cls):
        updated = (
            cls.get_model_class()
            .objects.filter(session_key=state.key, expire_date__gt=now)
            .update(expire_date=new_expiry)
        )
        if not updated:
            return None
        store = cls(state.key)
        if hasattr(store, "cache_key"):  # cached_db: keep the cached copy alive as long as the row
            from django.core.cache import caches

            caches[settings.SESSION_CACHE_ALIAS].touch(store.cache_key, state.max_age)
        return new_expiry
    store = cls(state.key)
    if _is_file_store(cls):
        path = store._key_to_file()
        if state.expires_at is None or state.expires_at <= now or not os.path.exists(path):
            return None
        os.utime(path)
        return new_expiry
    cache = getattr(store, "_cache", None)
    if cache is not None and hasattr(store, "cache_key"):
        return new_expiry if cache.touch(store.cache_key, state.max_age) else None
    return None


def can_extend() -> bool:
    """Whether the configured engine supports :func:`extend_session`."""
    cls = store_class()
    return _is_db_store(cls) or _is_file_store(cls) or hasattr(cls, "cache_key")
