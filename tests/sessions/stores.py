"""Session stores for the engine tests: a custom engine (``SESSION_ENGINE = "tests.sessions.stores"``) and a
project's subclass of Django's db store."""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.db import SessionStore as DbStore


class SessionStore(SessionBase):
    """A custom engine that derives from none of Django's stores: sessions in a dict of this process."""

    saved: dict[str, dict[str, Any]] = {}

    def exists(self, session_key: str) -> bool:
        return session_key in self.saved

    def create(self) -> None:
        self._session_key = self._get_new_session_key()
        self.save(must_create=True)
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        self.saved[self.session_key] = dict(self._get_session(no_load=must_create))

    def delete(self, session_key: str | None = None) -> None:
        self.saved.pop(session_key or self.session_key, None)

    def load(self) -> dict[str, Any]:
        try:
            return dict(self.saved[self.session_key])
        except KeyError:
            self._session_key = None
            return {}

    @classmethod
    def clear_expired(cls) -> None:
        pass


class AuditedDbStore(DbStore):
    """A project's subclass of the db store: still the db engine."""
