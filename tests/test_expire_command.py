"""manage.py expire_push_sessions: only expired sessions go, in batches; --dry-run changes nothing."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import connections, router
from django.test import override_settings
from django.utils import timezone

from tests.routers import SessionsOn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture(
    autouse=True,
    params=[
        ("sqlite", "range"),
        ("sqlite", "rowid"),
        pytest.param(("postgresql", "range"), marks=pytest.mark.postgres),
        pytest.param(("postgresql", "heap"), marks=pytest.mark.postgres),
    ],
    ids=lambda param: "-".join(param),
)
def sweep_database(request, settings, monkeypatch):
    """Every test on SQLite and on PostgreSQL, with both ways of batching each: ranges of the expire_date index
    (few rows expired) and ranges of the table's own order (most rows expired: rowids, PostgreSQL's pages),
    whatever the command would choose."""
    from django.conf import settings as django_settings

    from django_stomp_push.sessions import deletion

    database, batching = request.param
    if database == "postgresql":
        if "postgres" not in django_settings.DATABASES:
            pytest.skip(django_settings.POSTGRES_MISSING)
        settings.DATABASE_ROUTERS = [SessionsOn("postgres")]
        monkeypatch.setattr(deletion.PageRanges, "suits", lambda connection, model, now: batching == "heap")
    else:
        monkeypatch.setattr(deletion.RowidRanges, "suits", lambda connection, model, now: batching == "rowid")
    assert connections[router.db_for_write(Session)].vendor == database
    return request.param


#: the tests of exact batch sizes: ranges of expiry dates (SQLite and PostgreSQL); pages of the table hold as many
#: rows as fit
RANGES = pytest.mark.parametrize(
    "sweep_database",
    [("sqlite", "range"), pytest.param(("postgresql", "range"), marks=pytest.mark.postgres)],
    indirect=True,
    ids=lambda p: "-".join(p),
)

#: for the tests that need no database of sessions, or concern SQLite only
SQLITE_ONLY = pytest.mark.parametrize("sweep_database", [("sqlite", "range")], indirect=True, ids=["sqlite"])


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


@RANGES
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


@SQLITE_ONLY
def test_a_successful_run_at_verbosity_0_prints_nothing(monkeypatch):
    make_sessions(expired=10, alive=2)
    record_notices(monkeypatch)  # a layer that reaches the servers, as with channels-redis
    assert run("-v", "0") == ("", "")
    assert Session.objects.count() == 2


@SQLITE_ONLY
def test_verbosity_0_still_warns_that_the_in_memory_layer_closes_nothing():
    make_sessions(expired=10, alive=0)
    out, err = run("-v", "0")
    assert out == ""
    assert "in-memory channel layer" in err


@SQLITE_ONLY
def test_invalid_batch_size_is_a_command_error():
    with pytest.raises(CommandError, match="--batch-size"):
        run("--batch-size", "0")


@SQLITE_ONLY
@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache")
def test_cache_engine_has_nothing_to_sweep():
    out, _ = run()
    assert "Nothing to do" in out


@SQLITE_ONLY
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


def record_notices(monkeypatch) -> list[int]:
    """Make the command broadcast (as with channels-redis) into a list: one entry per sweep notice, the number of
    sessions deleted (committed) before it."""
    from django_stomp_push import sync_layer
    from django_stomp_push.sessions import sweep

    notices: list[int] = []

    def fake_send(group, message, *, caller, alias=None):
        assert (message["type"], message["reason"]) == ("stomp_push.sessions_swept", "session expired")
        notices.append(Session.objects.count())

    monkeypatch.setattr(sweep, "reaches_servers", lambda: True)
    monkeypatch.setattr(sweep, "is_process_local", lambda layer: False)
    monkeypatch.setattr(sync_layer, "send", fake_send)
    return notices


def batch_totals(out: str) -> list[int]:
    """The running totals of the -v 2 progress lines."""
    return [int(line.split(": ")[1].split()[0]) for line in out.splitlines() if line.startswith("batch ")]


def test_batches_are_ranges_of_expiry_dates_and_one_notice_follows_the_commit(monkeypatch, sweep_database):
    now = timezone.now()
    encoded = SessionStore().encode({"k": "v"})
    # expiry dates in runs of equal values, so that batches end in the middle of a run
    expired = {f"e{i:05d}{'x' * 26}": now - timedelta(days=1 + i // 300) for i in range(2500)}
    alive = {f"a{i:05d}{'x' * 26}": now + timedelta(days=1) for i in range(300)}
    Session.objects.bulk_create(
        [Session(session_key=k, session_data=encoded, expire_date=d) for k, d in {**expired, **alive}.items()],
        batch_size=500,
    )
    notices = record_notices(monkeypatch)
    out, _ = run("--batch-size", "400", "-v", "2")
    assert set(Session.objects.values_list("session_key", flat=True)) == set(alive)
    assert notices == [300]  # one transaction, then one notice to every hub
    totals = batch_totals(out)
    assert totals[-1] == 2500 and out.count("Deleted 2500 expired sessions in ") == 1
    if sweep_database[1] == "range":
        # A batch ends where the run of equal dates that would overflow it begins (oldest first: the 100 rows
        # of the oldest run and the next run, then one run of 300 per batch).
        assert totals == [400 + 300 * i for i in range(8)]
    else:
        # ranges of the table: about 400 rows each (at most 400 rowids), however the dates run
        assert all(0 < b - a <= 1000 for a, b in zip([0, *totals], totals, strict=False))


@RANGES
def test_a_notice_follows_each_commit(monkeypatch):
    from django_stomp_push.sessions import sweep

    make_sessions(expired=1000, alive=10)
    notices = record_notices(monkeypatch)
    monkeypatch.setattr(sweep.DatabaseSweep, "COMMIT_INTERVAL", 0.0)  # a transaction per batch
    out, _ = run("--batch-size", "400", "-v", "2")
    assert Session.objects.count() == 10
    assert notices == [10 + 1000 - total for total in batch_totals(out)]
    assert len(notices) >= 2


def test_nothing_expired_sends_no_notice_and_never_creates_the_layer(monkeypatch):
    from django_stomp_push.sessions import sweep

    make_sessions(expired=0, alive=10)
    notices = record_notices(monkeypatch)

    def no_layer():
        raise AssertionError("the channel layer was set up for a sweep that deleted nothing")

    monkeypatch.setattr(sweep, "get_layer", no_layer)
    out, _ = run()
    assert "Deleted 0 expired sessions in 0 batches" in out
    assert notices == []


@RANGES
def test_more_sessions_expiring_at_once_than_a_batch_go_by_key(monkeypatch, sweep_database):
    now = timezone.now()
    encoded = SessionStore().encode({"k": "v"})
    same = now - timedelta(hours=1)
    expired = [f"t{i:05d}{'x' * 26}" for i in range(1000)]
    Session.objects.bulk_create(
        [Session(session_key=key, session_data=encoded, expire_date=same) for key in expired]
        + [Session(session_key="later" + "x" * 27, session_data=encoded, expire_date=now - timedelta(minutes=1))]
        + [Session(session_key="alive" + "x" * 27, session_data=encoded, expire_date=now + timedelta(days=1))],
        batch_size=500,
    )
    out, _ = run("--batch-size", "400", "-v", "2")
    assert "Deleted 1001 expired sessions in 3 batches" in out
    # no range fits 400 rows of one expiry date: 400 by key, then 400, then the last 200 and the later row
    assert batch_totals(out) == [400, 800, 1001]
    assert list(Session.objects.values_list("session_key", flat=True)) == ["alive" + "x" * 27]


@SQLITE_ONLY
def test_rows_the_range_misses_are_deleted_by_key(monkeypatch, sweep_database):
    from django.db import connection  # a datetime stored in another text format is an SQLite thing

    make_sessions(expired=5, alive=2)
    odd = f"expired{3:08d}xxxxxxxxxxxxxxxxxxxxx"
    # Written by another program: Django reads the same instant back, but the text sorts after the others' and
    # outside the range Django's own formatting of it bounds.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_session SET expire_date = replace(expire_date, ' ', 'T') WHERE session_key = %s", [odd]
        )
    out, _ = run("--batch-size", "2")
    assert "Deleted 5 expired sessions" in out
    assert Session.objects.count() == 2 and not Session.objects.filter(pk=odd).exists()


@RANGES
def test_a_failed_notice_fails_the_command_with_what_is_committed_kept(monkeypatch):
    from django_stomp_push import sync_layer
    from django_stomp_push.sessions import sweep

    make_sessions(expired=5, alive=2)

    def failing_send(group, message, *, caller, alias=None):
        raise ConnectionError("redis went away")

    monkeypatch.setattr(sweep, "reaches_servers", lambda: True)
    monkeypatch.setattr(sync_layer, "send", failing_send)
    monkeypatch.setattr(sweep.DatabaseSweep, "COMMIT_INTERVAL", 0.0)
    with pytest.raises(CommandError, match=r"could not broadcast session closes.*redis went away"):
        run("--batch-size", "2")
    # the first transaction is committed; the command stops at its notice and leaves the rest for the next run
    assert Session.objects.count() == 5
    assert Session.objects.filter(expire_date__lt=timezone.now()).count() == 3


@pytest.mark.parametrize(
    "sweep_database, expired, alive, in_table_order",
    [
        (("sqlite", "range"), 600, 400, True),
        (("sqlite", "range"), 400, 600, False),
        pytest.param(("postgresql", "range"), 5000, 50, True, marks=pytest.mark.postgres),
        pytest.param(("postgresql", "range"), 50, 5000, False, marks=pytest.mark.postgres),
    ],
    indirect=["sweep_database"],
    ids=["sqlite-most-expired", "sqlite-few-expired", "postgresql-most-expired", "postgresql-few-expired"],
)
def test_batches_follow_the_tables_order_when_most_rows_expired(
    expired, alive, in_table_order, monkeypatch, sweep_database
):
    from django_stomp_push.sessions import deletion

    monkeypatch.undo()  # the sweep decides: PostgreSQL's planner, or the share of SQLite's rowids
    make_sessions(expired=expired, alive=alive)
    connection = connections[router.db_for_write(Session)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE django_session")
    in_order = deletion.table_order(connection, Session, timezone.now())
    assert (in_order is not None) is in_table_order
    if in_order is not None:
        assert sum(in_order.batches(100)) == expired
        assert Session.objects.count() == alive
