"""Each way of deleting expired sessions in batches, through its one interface: ``Deletion(connection, model,
now).batches(size)`` deletes every row expired before ``now`` and only those, about ``size`` rows a step."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connections, router
from django.utils import timezone

from django_stomp_push.sessions.deletion import (
    ExpiryRanges,
    MySQLKeyLists,
    PageRanges,
    RowidRanges,
    deletion_for,
)
from tests.sessions.conftest import sessions_on_postgresql

pytestmark = pytest.mark.django_db(databases="__all__")

BY_EXPIRY = pytest.mark.parametrize("way", [ExpiryRanges, MySQLKeyLists])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def connection(request, settings):
    if request.param == "postgresql":
        sessions_on_postgresql(settings)
    return connections[router.db_for_write(Session)]


@pytest.fixture
def sqlite(settings):
    return connections[router.db_for_write(Session)]


@pytest.fixture
def postgresql(settings):
    sessions_on_postgresql(settings)
    return connections[router.db_for_write(Session)]


def make_sessions(expiry_dates: list) -> None:
    encoded = SessionStore().encode({"k": "v"})
    Session.objects.bulk_create(
        [
            Session(session_key=f"s{i:06d}{'x' * 25}", session_data=encoded, expire_date=d)
            for i, d in enumerate(expiry_dates)
        ],
        batch_size=500,
    )


def expired_and_alive(expired: int, alive: int, interleaved: bool = False) -> None:
    now = timezone.now()
    dates = [now - timedelta(minutes=1 + i) for i in range(expired)] + [now + timedelta(days=1)] * alive
    if interleaved:  # every third row alive, in insertion (physical) order
        dates = [dates[expired + i // 3] if i % 3 == 2 else dates[i - i // 3] for i in range(expired + alive)]
    make_sessions(dates)


def analyze(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_session")


def nothing_expired_is_left(alive: int) -> bool:
    return Session.objects.count() == alive and not Session.objects.filter(expire_date__lt=timezone.now()).exists()


@BY_EXPIRY
def test_expiry_ranges_delete_a_batch_of_the_oldest_rows_at_a_time(connection, way):
    expired_and_alive(expired=250, alive=30)
    assert list(way(connection, Session, timezone.now()).batches(100)) == [100, 100, 50]
    assert nothing_expired_is_left(30)


@BY_EXPIRY
def test_expiry_ranges_go_by_key_when_more_rows_than_a_batch_expire_at_once(connection, way):
    now = timezone.now()
    make_sessions([now - timedelta(hours=1)] * 250 + [now - timedelta(minutes=1), now + timedelta(days=1)])
    assert list(way(connection, Session, now).batches(100)) == [100, 100, 51]
    assert nothing_expired_is_left(1)


@BY_EXPIRY
def test_expiry_ranges_spare_rows_that_expire_after_now(connection, way):
    now = timezone.now()
    make_sessions([now - timedelta(minutes=1)] * 3 + [now + timedelta(seconds=1)] * 2)
    assert sum(way(connection, Session, now).batches(2)) == 3
    assert Session.objects.count() == 2


def test_rowid_ranges_delete_the_expired_rows_of_consecutive_rowids(sqlite):
    expired_and_alive(expired=200, alive=100, interleaved=True)
    counts = list(RowidRanges(sqlite, Session, timezone.now()).batches(100))
    assert len(counts) == 3 and sum(counts) == 200 and all(count <= 100 for count in counts)
    assert nothing_expired_is_left(100)


@pytest.mark.parametrize(("expired", "alive", "suits"), [(60, 40, True), (40, 60, False), (0, 0, False)])
def test_rowid_ranges_suit_a_table_whose_rowids_are_mostly_expired(sqlite, expired, alive, suits):
    expired_and_alive(expired, alive)
    assert RowidRanges.suits(sqlite, Session, timezone.now()) is suits


@pytest.mark.postgres
def test_page_ranges_delete_the_expired_rows_of_consecutive_pages(postgresql):
    expired_and_alive(expired=3000, alive=1500, interleaved=True)
    analyze(postgresql)  # a batch's pages come from the table's statistics
    counts = list(PageRanges(postgresql, Session, timezone.now()).batches(500))
    assert len(counts) >= 5 and sum(counts) == 3000 and max(counts) < 1000
    assert nothing_expired_is_left(1500)


@pytest.mark.postgres
@pytest.mark.parametrize(("expired", "alive", "suits"), [(5000, 50, True), (50, 5000, False)])
def test_page_ranges_suit_a_table_postgresql_would_scan_whole(postgresql, expired, alive, suits):
    expired_and_alive(expired, alive)
    analyze(postgresql)
    assert PageRanges.suits(postgresql, Session, timezone.now()) is suits


def test_an_empty_table_deletes_nothing_whatever_the_way(connection):
    now = timezone.now()
    ways = [ExpiryRanges, MySQLKeyLists, PageRanges if connection.vendor == "postgresql" else RowidRanges]
    assert [sum(way(connection, Session, now).batches(10)) for way in ways] == [0, 0, 0]


@pytest.mark.parametrize(("expired", "alive", "chosen"), [(60, 40, RowidRanges), (40, 60, ExpiryRanges)])
def test_sqlite_deletes_in_rowid_order_when_most_rows_expired(sqlite, expired, alive, chosen):
    expired_and_alive(expired, alive)
    assert type(deletion_for(sqlite, Session, timezone.now())) is chosen


def test_mysql_deletes_by_expiry_with_lists_of_keys():
    assert type(deletion_for(SimpleNamespace(vendor="mysql"), Session, timezone.now())) is MySQLKeyLists
