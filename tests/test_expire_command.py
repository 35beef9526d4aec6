"""manage.py expire_push_sessions: only expired sessions go, in batches; --dry-run changes nothing."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)


def make_sessions(expired: int, alive: int) -> None:
    now = timezone.now()
    encoded = SessionStore().encode({"k": "v"})
    rows = [
        Session(
            session_key=f"expired{i:08d}xxxxxxxxxxxxxxxxxxxxx", session_data=encoded, expire_date=now - timedelta(1)
        )
        for i in range(expired)
    ] + [
        Session(
            session_key=f"alive{i:08d}xxxxxxxxxxxxxxxxxxxxxxx", session_data=encoded, expire_date=now + timedelta(1)
        )
        for i in range(alive)
    ]
    Session.objects.bulk_create(rows, batch_size=500)


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("expire_push_sessions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_deletes_only_expired_sessions_in_batches():
    make_sessions(expired=3000, alive=500)
    out, err = run("--batch-size", "700", "-v", "2")
    assert Session.objects.count() == 500
    assert not Session.objects.filter(expire_date__lt=timezone.now()).exists()
    assert "batch 5: 3000 expired sessions so far" in out
    assert "Deleted 3000 expired sessions in 5 batches" in out
    assert "in-memory channel layer" in err  # it says it closes nothing instead of pretending


def test_dry_run_counts_and_changes_nothing():
    make_sessions(expired=1200, alive=10)
    out, _ = run("--dry-run", "--batch-size", "500")
    assert "1200 expired sessions would be deleted" in out
    assert Session.objects.count() == 1210


def test_progress_is_quiet_at_default_verbosity():
    make_sessions(expired=10, alive=0)
    out, _ = run()
    assert "so far" not in out
    assert "Deleted 10 expired sessions in 1 batches" in out


def test_invalid_batch_size_is_a_command_error():
    with pytest.raises(CommandError, match="--batch-size"):
        run("--batch-size", "0")


@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache")
def test_cache_engine_has_nothing_to_sweep():
    out, _ = run()
    assert "Nothing to do" in out


def test_file_engine_removes_only_expired_session_files(tmp_path, settings):
    # Both through the settings fixture: mixed with @override_settings, its teardown would restore the
    # decorator's SESSION_ENGINE after the decorator had ended, and leak it into every later test.
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.file"
    settings.SESSION_FILE_PATH = str(tmp_path)
    from django.contrib.sessions.backends.file import SessionStore as FileStore

    alive = FileStore()
    alive["x"] = 1
    alive.create()
    expired = FileStore()
    expired["x"] = 1
    expired.set_expiry(1)
    expired.create()
    path = tmp_path / (settings.SESSION_COOKIE_NAME + expired.session_key)
    import os

    os.utime(path, (0, 0))  # last modified in 1970: long expired
    out, _ = run()
    assert not path.exists()
    assert (tmp_path / (settings.SESSION_COOKIE_NAME + alive.session_key)).exists()
    assert "Deleted 1 expired sessions" in out
