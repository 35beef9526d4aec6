"""One class per family of Django session engines, behind one interface, as Django keeps one backend per engine.

An engine is chosen by ``issubclass`` of the configured ``SessionStore`` against Django's own stores, so that a
project's subclass of one of them is treated as that engine; any other store gets :class:`OtherEngine`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import caches
from django.db.models import Model
from django.utils import timezone

from .auth import still_signed_in
from .state import SessionState, session_state

if TYPE_CHECKING:
    from .sweep import Sweep

#: Session keys per query of :meth:`DatabaseEngine.read_many` and :meth:`DatabaseEngine.swept_keys`.
KEYS_PER_QUERY = 1000


class SessionEngine:
    """What a connection needs from a session engine: read a session, extend it, learn which sessions were swept.

    The defaults read through the store's ``load()`` and can neither extend nor sweep.
    """

    #: Whether a session can be extended server-side by :meth:`extend`.
    can_extend: ClassVar[bool] = False
    #: Whether the server can end a session at all (signed cookies live in the browser).
    ends_server_side: ClassVar[bool] = True

    def __init__(self, store_class: type[SessionBase]) -> None:
        self.store_class = store_class

    @property
    def session_model(self) -> type[Model] | None:
        """The model whose rows are the sessions (db engines); None for the others."""
        return None

    @property
    def signals_deletes(self) -> bool:
        """Whether deleting a session sends ``post_delete`` (so that it can close its connections at once)."""
        return self.session_model is not None

    def read(self, key: str) -> SessionState | None:
        """The state of session ``key``, or None if it does not exist, has expired, or its user is no longer valid."""
        store = self.store_class(key)
        data, valid = load_without_create(store)
        users = still_signed_in({key: data}) if valid else {}
        if key not in users:
            return None
        return session_state(store, key, self._expires_at(store, data), data, users[key])

    def read_many(self, keys: Iterable[str]) -> dict[str, SessionState | None]:
        """:meth:`read` of each of ``keys``."""
        return {key: self.read(key) for key in dict.fromkeys(keys)}

    def extend(self, state: SessionState) -> datetime | None:
        """Push the session's expiry to now + its age, only if it still exists and is unexpired.

        Returns the new expiry, or None when nothing was extended (gone, expired, absolute expiry, or an engine that
        cannot be extended). Never saves the session object: a plain ``save()`` could resurrect a session deleted
        meanwhile or overwrite data an HTTP request just wrote.
        """
        if state.max_age is None or not self.can_extend:
            return None
        now = timezone.now()
        new_expiry = now + timedelta(seconds=state.max_age)
        return new_expiry if self._push_expiry(state, now, new_expiry) else None

    def extend_many(self, states: Iterable[SessionState]) -> dict[str, datetime | None]:
        """:meth:`extend` of each of ``states`` (one per session key), by key."""
        return {state.key: self.extend(state) for state in _one_per_key(states)}

    def swept_keys(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` have no live row any more (deleted, or expired and awaiting the sweep); empty for the
        engines without rows to sweep."""
        return set()

    def sweep(self) -> Sweep | None:
        """How ``expire_push_sessions`` deletes this engine's expired sessions; None when it has nothing to sweep."""
        return None

    def _expires_at(self, store: SessionBase, data: dict[str, Any]) -> datetime | None:
        expiry = data.get("_session_expiry")
        return datetime.fromisoformat(expiry) if isinstance(expiry, str) else None

    def _push_expiry(self, state: SessionState, now: datetime, new_expiry: datetime) -> bool:
        """Set the expiry of a session that still exists and is unexpired at ``now``; whether it did."""
        return False


class DatabaseEngine(SessionEngine):
    """``db``: a row per session with its ``expire_date``; deletes send ``post_delete``; swept by the command."""

    can_extend = True

    @property
    def session_model(self) -> type[Model]:
        return cast("type[Model]", self.store_class.get_model_class())  # type: ignore[attr-defined]

    def read(self, key: str) -> SessionState | None:
        return self.read_many([key])[key]

    def read_many(self, keys: Iterable[str]) -> dict[str, SessionState | None]:
        """The state of each of ``keys``: one query for the rows (per :data:`KEYS_PER_QUERY` keys), then the same
        checks as :meth:`read`, with the users of the signed-in sessions fetched together."""
        states: dict[str, SessionState | None] = dict.fromkeys(keys)
        unique = list(states)
        now = timezone.now()
        for start in range(0, len(unique), KEYS_PER_QUERY):
            rows = self.session_model.objects.filter(
                session_key__in=unique[start : start + KEYS_PER_QUERY], expire_date__gt=now
            ).values_list("session_key", "expire_date", "session_data")
            found = {key: (self.store_class(key), expires_at, encoded) for key, expires_at, encoded in rows}
            decoded = {key: store.decode(encoded) for key, (store, _, encoded) in found.items()}
            for key, user in still_signed_in(decoded).items():
                store, expires_at, _ = found[key]
                states[key] = session_state(store, key, expires_at, decoded[key], user)
        return states

    def swept_keys(self, keys: list[str]) -> set[str]:
        """One query per :data:`KEYS_PER_QUERY` keys (the hub asks per 1,000)."""
        model = self.session_model
        live: set[str] = set()
        for start in range(0, len(keys), KEYS_PER_QUERY):
            rows = model.objects.filter(
                session_key__in=keys[start : start + KEYS_PER_QUERY], expire_date__gt=timezone.now()
            )
            live.update(rows.values_list("session_key", flat=True))
        return set(keys) - live

    def sweep(self) -> Sweep:
        from .sweep import DatabaseSweep

        return DatabaseSweep(self.session_model)

    def _push_expiry(self, state: SessionState, now: datetime, new_expiry: datetime) -> bool:
        # One conditional UPDATE: a row deleted or expired meanwhile stays so (no resurrection, no lost writes).
        rows = self.session_model.objects.filter(session_key=state.key, expire_date__gt=now)
        return bool(rows.update(expire_date=new_expiry))

    def extend_many(self, states: Iterable[SessionState]) -> dict[str, datetime | None]:
        """One conditional ``UPDATE`` per age (per :data:`KEYS_PER_QUERY` keys) for all of ``states``: a row deleted
        or expired meanwhile stays so. When it updated fewer rows than it was given keys, one ``SELECT`` of the
        rows that carry the new expiry tells which were extended."""
        extended: dict[str, datetime | None] = {}
        by_age: dict[int, list[str]] = {}
        for state in _one_per_key(states):
            extended[state.key] = None
            if state.max_age is not None:
                by_age.setdefault(state.max_age, []).append(state.key)
        model = self.session_model
        now = timezone.now()
        for age, keys in by_age.items():
            new_expiry = now + timedelta(seconds=age)
            for start in range(0, len(keys), KEYS_PER_QUERY):
                chunk = keys[start : start + KEYS_PER_QUERY]
                updated = model.objects.filter(session_key__in=chunk, expire_date__gt=now).update(
                    expire_date=new_expiry
                )
                if updated == len(chunk):
                    done: Iterable[str] = chunk
                elif not updated:
                    done = ()
                else:
                    rows = model.objects.filter(session_key__in=chunk, expire_date=new_expiry)
                    done = rows.values_list("session_key", flat=True)
                for key in done:
                    extended[key] = new_expiry
        return extended


class CachedDatabaseEngine(DatabaseEngine):
    """``cached_db``: the db engine, whose extension also keeps the cached copy alive as long as the row."""

    def _push_expiry(self, state: SessionState, now: datetime, new_expiry: datetime) -> bool:
        if not super()._push_expiry(state, now, new_expiry):
            return False
        cache_key = self.store_class(state.key).cache_key  # type: ignore[attr-defined]
        caches[settings.SESSION_CACHE_ALIAS].touch(cache_key, state.max_age)
        return True

    def extend_many(self, states: Iterable[SessionState]) -> dict[str, datetime | None]:
        states = _one_per_key(states)
        extended = super().extend_many(states)
        cache = caches[settings.SESSION_CACHE_ALIAS]
        for state in states:
            if extended[state.key] is not None:
                cache.touch(self.store_class(state.key).cache_key, state.max_age)  # type: ignore[attr-defined]
        return extended


class FileEngine(SessionEngine):
    """``file``: a file per session, expiring at its modification time + its age; swept by the command."""

    can_extend = True

    def sweep(self) -> Sweep:
        from .sweep import FileSweep

        return FileSweep(self)

    def expires_at(self, store: SessionBase, path: str, data: dict[str, Any]) -> datetime:
        """When the session stored in the file ``path`` (with decoded ``data``) expires."""
        modified = datetime.fromtimestamp(os.path.getmtime(path), tz=timezone.get_current_timezone())
        return store.get_expiry_date(modification=modified, expiry=data.get("_session_expiry"))

    def _expires_at(self, store: SessionBase, data: dict[str, Any]) -> datetime:
        return self.expires_at(store, _file_of(store), data)

    def _push_expiry(self, state: SessionState, now: datetime, new_expiry: datetime) -> bool:
        path = _file_of(self.store_class(state.key))
        if state.expires_at is None or state.expires_at <= now or not os.path.exists(path):
            return False
        os.utime(path)
        return True


def _one_per_key(states: Iterable[SessionState]) -> list[SessionState]:
    """``states`` with the last one of each session key only."""
    return list({state.key: state for state in states}.values())


def _file_of(store: SessionBase) -> str:
    # Django has no public way to name a session's file; _key_to_file() also refuses a key with characters outside
    # VALID_KEY_CHARS, which keeps a forged cookie from naming a path outside SESSION_FILE_PATH.
    return cast(str, store._key_to_file())  # type: ignore[attr-defined]


class CacheEngine(SessionEngine):
    """``cache``: a cache entry per session; its expiry cannot be read, but it can be extended with ``touch``."""

    can_extend = True

    def _push_expiry(self, state: SessionState, now: datetime, new_expiry: datetime) -> bool:
        cache_key = self.store_class(state.key).cache_key  # type: ignore[attr-defined]
        return bool(caches[settings.SESSION_CACHE_ALIAS].touch(cache_key, state.max_age))


class SignedCookiesEngine(SessionEngine):
    """``signed_cookies``: the session lives in the browser; the server can check it, not extend or end it."""

    ends_server_side = False


class OtherEngine(SessionEngine):
    """A session engine this package does not know: read through its ``load()``; never extended, nothing swept.
    Ended at logout (``user_logged_out``) and at the connections' revalidation."""


def engine_for(store_class: type[SessionBase]) -> SessionEngine:
    """The engine object for ``store_class``: the first of Django's stores it derives from decides."""
    from django.contrib.sessions.backends import cache, cached_db, db, file, signed_cookies

    families: list[tuple[type[SessionBase], type[SessionEngine]]] = [
        (cached_db.SessionStore, CachedDatabaseEngine),  # before db: it derives from db's store
        (db.SessionStore, DatabaseEngine),
        (file.SessionStore, FileEngine),
        (cache.SessionStore, CacheEngine),
        (signed_cookies.SessionStore, SignedCookiesEngine),
    ]
    for django_store, engine in families:
        if issubclass(store_class, django_store):
            return engine(store_class)
    return OtherEngine(store_class)


def load_without_create(store: SessionBase) -> tuple[dict[str, Any], bool]:
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
