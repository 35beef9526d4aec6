"""What the sweep does per engine, through its one interface: ``run`` deletes the expired sessions in batches and
tells the servers, ``count`` deletes nothing; and :class:`Closes`, how the servers are told."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore as DbStore
from django.contrib.sessions.backends.file import SessionStore as FileStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from django_stomp_push import sync_layer
from django_stomp_push.destinations import HUBS_GROUP, session_hashes
from django_stomp_push.layer_messages import END_SESSIONS, SESSIONS_SWEPT
from django_stomp_push.sessions import session_engine, sweep
from django_stomp_push.sessions.deletion import Deletion
from django_stomp_push.sessions.sweep import Closes, DatabaseSweep, FileSweep, SweepError

pytestmark = pytest.mark.django_db


class Told:
    """Stands in for :class:`Closes`: what the servers would have been told, and when."""

    def __init__(self) -> None:
        self.rows_at_swept: list[int] = []
        self.ended_batches: list[list[str]] = []

    def swept(self) -> None:
        self.rows_at_swept.append(Session.objects.count())

    def ended(self, keys: list[str]) -> None:
        self.ended_batches.append(list(keys))


class Progress(list):
    def __call__(self, batches: int, found: int) -> None:
        self.append((batches, found))


def make_rows(expired: int, alive: int) -> None:
    now = timezone.now()
    encoded = DbStore().encode({"k": "v"})
    dates = [now - timedelta(minutes=1 + i) for i in range(expired)] + [now + timedelta(days=1)] * alive
    Session.objects.bulk_create(
        [Session(session_key=f"s{i:06d}{'x' * 25}", session_data=encoded, expire_date=d) for i, d in enumerate(dates)]
    )


@pytest.mark.parametrize(
    ("engine", "sweep_class"),
    [
        ("db", DatabaseSweep),
        ("cached_db", DatabaseSweep),
        ("file", FileSweep),
        ("cache", type(None)),
        ("signed_cookies", type(None)),
    ],
)
def test_each_engine_has_its_sweep_or_none(settings, engine, sweep_class):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends." + engine
    assert type(session_engine().sweep()) is sweep_class


# -- the database sweep --------------------------------------------------------------------------------------------


def test_a_database_sweep_deletes_in_batches_and_tells_the_hubs_once_per_commit():
    make_rows(expired=250, alive=5)
    told, progress = Told(), Progress()
    assert DatabaseSweep(Session).run(100, told, progress) == (250, 3)
    assert Session.objects.count() == 5
    assert progress == [(1, 100), (2, 200), (3, 250)]
    assert told.rows_at_swept == [5]  # one transaction (shorter than COMMIT_INTERVAL), one notice after it


def test_a_database_sweep_tells_the_hubs_after_each_commit(monkeypatch):
    monkeypatch.setattr(DatabaseSweep, "COMMIT_INTERVAL", 0.0)  # a transaction per batch
    make_rows(expired=250, alive=5)
    told = Told()
    DatabaseSweep(Session).run(100, told, Progress())
    assert told.rows_at_swept == [155, 55, 5]


def test_a_database_sweep_that_finds_nothing_tells_nobody():
    make_rows(expired=0, alive=5)
    told = Told()
    assert DatabaseSweep(Session).run(100, told, Progress()) == (0, 0)
    assert told.rows_at_swept == []


def test_a_database_dry_run_counts_and_deletes_nothing():
    make_rows(expired=250, alive=5)
    progress = Progress()
    assert DatabaseSweep(Session).count(100, progress) == (250, 3)
    assert progress == [(1, 100), (2, 200), (3, 250)]
    assert Session.objects.count() == 255


def test_a_failing_delete_stops_the_sweep_saying_how_many_were_deleted(monkeypatch):
    class FailingSecondBatch(Deletion):
        def batches(self, batch_size):
            yield 100
            raise OSError("disk full")

    monkeypatch.setattr(sweep, "deletion_for", FailingSecondBatch)
    with pytest.raises(SweepError, match="deleting expired sessions failed after 100: disk full"):
        DatabaseSweep(Session).run(100, Told(), Progress())


# -- the file sweep ------------------------------------------------------------------------------------------------


@pytest.fixture
def session_files(settings, tmp_path):
    """Three expired session files and a live one; their keys."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.file"
    settings.SESSION_FILE_PATH = str(tmp_path)
    keys = {}
    for name in ("old1", "old2", "old3", "live"):
        store = FileStore()
        store["x"] = 1
        store.create()
        keys[name] = store.session_key
        if name.startswith("old"):
            os.utime(tmp_path / (settings.SESSION_COOKIE_NAME + store.session_key), (0, 0))  # modified in 1970
    return keys


def test_a_file_sweep_removes_the_expired_files_and_broadcasts_their_keys_per_batch(session_files):
    told, progress = Told(), Progress()
    assert session_engine().sweep().run(2, told, progress) == (3, 2)
    assert [len(keys) for keys in told.ended_batches] == [2, 1]
    expired = {session_files[name] for name in ("old1", "old2", "old3")}
    assert {key for keys in told.ended_batches for key in keys} == expired
    assert progress == [(1, 2), (2, 3)]
    assert [FileStore().exists(key) for key in session_files.values()] == [False, False, False, True]


def test_a_file_dry_run_counts_and_removes_nothing(session_files):
    assert session_engine().sweep().count(2, Progress()) == (3, 2)
    assert all(FileStore().exists(key) for key in session_files.values())


# -- how the servers are told --------------------------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch) -> list:
    messages: list = []
    monkeypatch.setattr(sync_layer, "send", lambda group, message, *, caller: messages.append((group, message)))
    return messages


def test_closes_tell_every_hub_once_per_sweep_notice_and_send_ended_keys_hashed_1000_per_message(sent):
    keys = [f"k{i:05d}" for i in range(2500)]
    closes = Closes(broadcast=True)
    closes.swept()
    closes.ended(keys)
    assert [(group, message["type"]) for group, message in sent] == [(HUBS_GROUP, SESSIONS_SWEPT)] + [
        (HUBS_GROUP, END_SESSIONS)
    ] * 3
    assert [message["sessions"] for _, message in sent[1:]] == [
        session_hashes(keys[:1000]),
        session_hashes(keys[1000:2000]),
        session_hashes(keys[2000:]),
    ]
    assert {message["reason"] for _, message in sent} == {"session expired"}
    assert closes.local and not closes.reach_servers  # the test settings' in-memory layer


def test_closes_that_do_not_broadcast_send_nothing_and_never_create_the_layer(sent, monkeypatch):
    monkeypatch.setattr(sweep, "get_layer", lambda: pytest.fail("the channel layer was created"))
    closes = Closes(broadcast=False)
    closes.swept()
    closes.ended(["k"])
    assert sent == []


def test_a_broadcast_the_layer_refuses_is_a_sweep_error(monkeypatch):
    def timed_out(group, message, *, caller):
        raise TimeoutError("the channel layer 'default' did not answer within LAYER_TIMEOUT (1 s)")

    monkeypatch.setattr(sync_layer, "send", timed_out)
    with pytest.raises(
        SweepError, match=r"could not broadcast session closes through the channel layer: .*LAYER_TIMEOUT"
    ):
        Closes(broadcast=True).swept()
