"""Database routers the tests use."""

from __future__ import annotations


class SessionsOn:
    """A database router: the sessions app on one database alias."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def db_for_read(self, model, **hints):
        return self.alias if model._meta.app_label == "sessions" else None

    db_for_write = db_for_read
