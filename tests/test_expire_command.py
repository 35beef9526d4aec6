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


def record_broadcasts(monkeypatch) -> list[list[str]]:
    """Make the command broadcast (as with channels-redis) into a list: one entry per broadcast, its keys."""
    from django_stomp_push.management.commands import expire_push_sessions as command

    sent: list[list[str]] = []

    async def fake_aend_sessions(keys, reason):
        assert reason == "session expired"
        assert len(sent) < 100, "the sweep does not end"
        sent.append(list(keys))

    monkeypatch.setattr(command, "is_process_local", lambda layer: False)
    monkeypatch.setattr(command, "aend_sessions", fake_aend_sessions)
    return sent


def test_one_broadcast_per_batch_with_exactly_its_keys(monkeypatch):
    now = timezone.now()
    encoded = SessionStore().encode({"k": "v"})
    # expiry dates in runs of equal values, so that batches end in the middle of a run
    expired = {f"e{i:05d}{'x' * 26}": now - timedelta(days=1 + i // 300) for i in range(2500)}
    alive = {f"a{i:05d}{'x' * 26}": now + timedelta(days=1) for i in range(300)}
    Session.objects.bulk_create(
        [Session(session_key=k, session_data=encoded, expire_date=d) for k, d in {**expired, **alive}.items()],
        batch_size=500,
    )
    sent = record_broadcasts(monkeypatch)
    out, _ = run("--batch-size", "400")
    assert "Deleted 2500 expired sessions in 7 batches and broadcast their closes" in out
    assert [len(keys) for keys in sent] == [400] * 6 + [100]
    flat = [key for keys in sent for key in keys]
    assert len(flat) == len(set(flat)) and set(flat) == set(expired)
    assert set(Session.objects.values_list("session_key", flat=True)) == set(alive)


def test_a_large_batch_broadcasts_its_closes_per_1000_keys(monkeypatch):
    make_sessions(expired=2500, alive=10)
    sent = record_broadcasts(monkeypatch)
    out, _ = run()  # the default batch size: 10,000
    assert "Deleted 2500 expired sessions in 1 batches and broadcast their closes" in out
    assert [len(keys) for keys in sent] == [1000, 1000, 500]
    assert len({key for keys in sent for key in keys}) == 2500
    assert Session.objects.count() == 10


def test_rows_the_range_misses_are_deleted_by_key(monkeypatch):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("a datetime stored in another text format is an SQLite thing")
    make_sessions(expired=5, alive=2)
    odd = f"expired{3:08d}xxxxxxxxxxxxxxxxxxxxx"
    # Written by another program: Django reads the same instant back, but the text sorts after the others' and
    # outside the range Django's own formatting of it bounds. It is the last row of the last batch.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_session SET expire_date = replace(expire_date, ' ', 'T') WHERE session_key = %s", [odd]
        )
    sent = record_broadcasts(monkeypatch)
    out, _ = run("--batch-size", "2")
    assert "Deleted 5 expired sessions in 3 batches" in out
    assert sent[-1] == [odd]
    assert Session.objects.count() == 2


def test_a_failed_broadcast_stops_the_sweep_with_its_batch_deleted(monkeypatch):
    from django_stomp_push.management.commands import expire_push_sessions as command

    make_sessions(expired=5, alive=2)
    calls = []

    async def failing_aend_sessions(keys, reason):
        calls.append(keys)
        if len(calls) == 2:
            raise ConnectionError("redis went away")

    monkeypatch.setattr(command, "is_process_local", lambda layer: False)
    monkeypatch.setattr(command, "aend_sessions", failing_aend_sessions)
    with pytest.raises(CommandError, match=r"could not broadcast session closes.*redis went away"):
        run("--batch-size", "2")
    # as documented: the batch at hand is deleted (and the one before), the rest is left for the next run
    assert Session.objects.count() == 3
    assert Session.objects.filter(expire_date__lt=timezone.now()).count() == 1
