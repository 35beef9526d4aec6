"""Databases for the benchmarks: PostgreSQL at 127.0.0.1:5432 (user ``postgres``, trust auth) and SQLite files,
and databases of signed-in sessions for servers under :mod:`signed_in_settings` (``bench/portable/``).

A :class:`SessionDatabase` is migrated fresh, then holds users each signed in with a session of their own, written
straight into the tables as a login would leave them (``auth_user`` and ``django_session``, the session's
auth hash included), so that every client of a benchmark can send a cookie of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .processes import PYTHONPATH, REPO

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
#: the settings servers of the signed-in benchmarks run with (a top-level module: see bench/portable/)
SETTINGS = "signed_in_settings"
COOKIE = "sessionid"

#: migrates the database, then creates argv[1] users with one signed-in session each and prints their keys
CREATE_SESSIONS = """
import json, sys
from datetime import timedelta
import django
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone
from django.utils.crypto import get_random_string

count = int(sys.argv[1])
call_command("migrate", interactive=False, verbosity=0)
User = get_user_model()
password = make_password(get_random_string(16))  # one real hash for all: the auth hash is computed from it
batch = get_random_string(8).lower()
users = User.objects.bulk_create(
    [User(username=f"bench-{batch}-{i}", password=password) for i in range(count)], batch_size=1000
)
store, expire = SessionStore(), timezone.now() + timedelta(days=1)
sessions = [
    Session(
        session_key=get_random_string(32, VALID_KEY_CHARS),
        session_data=store.encode({
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }),
        expire_date=expire,
    )
    for user in users
]
Session.objects.bulk_create(sessions, batch_size=1000)
print(json.dumps([s.session_key for s in sessions]))
"""


#: the environment variables that choose the database, layer or session engine: only a benchmark sets them
CHOOSERS = ("DJANGO_DB_PATH", "REDIS_URL", "SESSION_ENGINE", "BENCH_PG_")


def django_env(settings: str, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a Django process of this checkout with ``settings``: this process's, without what
    chooses a database or layer, plus ``extra``."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(CHOOSERS)}
    return {**inherited, "DJANGO_SETTINGS_MODULE": settings, "PYTHONPATH": PYTHONPATH, **extra}


def pg_connect(dbname: str):
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True, connect_timeout=5)


def pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with pg_connect("postgres") as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER}) is unreachable: {first}"
    return None


def pg_env(name: str) -> dict[str, str]:
    """What selects PostgreSQL database ``name`` in the bench settings modules."""
    return {"BENCH_PG_NAME": name, "BENCH_PG_HOST": PG_HOST, "BENCH_PG_PORT": str(PG_PORT), "BENCH_PG_USER": PG_USER}


class SessionDatabase:
    """A fresh database of signed-in sessions; :meth:`env` selects it for a server, :meth:`close` removes it."""

    key = ""
    label = ""

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def create_sessions(self, count: int, timeout: float = 300) -> list[str]:
        """Migrate, then sign in ``count`` new users, one session each: their session keys."""
        done = subprocess.run(
            [sys.executable, "-c", CREATE_SESSIONS, str(count)],
            env=django_env(SETTINGS, self.env()),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"creating {count} signed-in sessions on {self.label} failed: {last}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def close(self) -> None:
        raise NotImplementedError


class SqliteSessions(SessionDatabase):
    key, label = "sqlite", "SQLite"

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "sessions.sqlite3"
        self.close()

    def env(self) -> dict[str, str]:
        return {"DJANGO_DB_PATH": str(self.path)}

    def close(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)


class PostgresSessions(SessionDatabase):
    key, label = "postgresql", "PostgreSQL"

    def __init__(self, name: str = "stomp_push_bench_sessions") -> None:
        self.name = name
        with pg_connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def env(self) -> dict[str, str]:
        return pg_env(self.name)

    def close(self) -> None:
        with pg_connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


SESSION_DATABASES = {SqliteSessions.key: SqliteSessions.label, PostgresSessions.key: PostgresSessions.label}


def open_sessions(key: str, workdir: Path) -> SessionDatabase:
    """A fresh database of engine ``key`` (a key of :data:`SESSION_DATABASES`)."""
    return SqliteSessions(workdir) if key == "sqlite" else PostgresSessions()
