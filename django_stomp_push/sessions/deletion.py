"""Ways of deleting a session table's expired rows in bounded batches: one class per order a database reads fastest.

Every way has one interface: ``Deletion(connection, model, now).batches(batch_size)`` yields how many rows each
batch deleted, and deletes the next batch only when asked for it (the sweep commits between batches).
:func:`deletion_for` chooses:

- most rows expired, PostgreSQL (:class:`PageRanges`) or SQLite (:class:`RowidRanges`): ranges of the table's own
  order, which cost what one whole-table ``DELETE`` costs;
- otherwise ranges of the ``expire_date`` index, oldest first (:class:`ExpiryRanges`; :class:`MySQLKeyLists` on
  MySQL).

Nothing is read back and no row is loaded: the deletes are raw, so that the ``post_delete`` receiver (see
``signals.py``) does not make Django load each row and send a signal for it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, cast

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model, QuerySet


class Deletion(ABC):
    """Deletes the rows of ``model`` that expired before ``now``, batch by batch, on ``connection``."""

    def __init__(self, connection: BaseDatabaseWrapper, model: type[Model], now: datetime) -> None:
        self.connection = connection
        self.model = model
        self.now = now

    @abstractmethod
    def batches(self, batch_size: int) -> Iterator[int]:
        """Delete about ``batch_size`` expired rows per step; yield how many each step deleted."""


def _raw_delete(rows: QuerySet[Any]) -> int:
    # QuerySet.delete() goes through the deletion Collector, which loads every row and sends post_delete for each
    # while a receiver is connected (ours is): at 100,000 rows, 15 to 20 times the time of the one DELETE (see
    # docs/expire-command.md). _raw_delete is the statement Django's own fast delete runs; Django has no public
    # API for it.
    return rows._raw_delete(rows.db)


class ExpiryRanges(Deletion):
    """Batches that are ranges of the expire_date index, [after, bound), oldest first, where ``bound`` is the
    expire_date ``batch_size`` rows further on.

    Memory stays flat however many rows there are, and a batch's scans start where the previous batch ended instead
    of walking past the entries of the rows deleted before (PostgreSQL keeps them in the index until the
    transaction ends).
    """

    def batches(self, batch_size: int) -> Iterator[int]:
        sessions = self.model._default_manager.using(self.connection.alias)
        expired = sessions.filter(expire_date__lt=self.now)
        after: datetime | None = None
        while True:
            remaining = expired if after is None else expired.filter(expire_date__gte=after)
            dates = remaining.order_by("expire_date").values_list("expire_date", flat=True)
            bound = next(iter(dates[batch_size:][:1]), None)
            if bound is None:  # at most batch_size rows left
                yield _raw_delete(remaining)
                return
            count = _raw_delete(remaining.filter(expire_date__lt=bound))
            if count:
                after = bound
            else:
                # More than batch_size rows expire at ``after``; or the bound, read back through Django, is not how
                # the database compares it (e.g. a datetime another program wrote in another text format): the next
                # batch_size rows by key.
                page = self._key_page(remaining.order_by("expire_date").values_list("pk", flat=True)[:batch_size])
                count = _raw_delete(sessions.filter(pk__in=page, expire_date__lt=self.now))
            yield count

    def _key_page(self, keys: QuerySet[Any]) -> Any:
        """The keys of a batch by key, as the ``IN`` of the delete takes them: a subquery."""
        return keys


class MySQLKeyLists(ExpiryRanges):
    """:class:`ExpiryRanges` on MySQL, whose batches by key are lists of keys: MySQL has no ``LIMIT`` in an ``IN``
    subquery."""

    def _key_page(self, keys: QuerySet[Any]) -> Any:
        return list(keys)


class TableOrderRanges(Deletion):
    """Batches that are consecutive ranges [start, start + step) of the table's physical order (``position``, given
    as ``literal(n)`` in ``placeholder``); the last range is open: it takes rows added meanwhile too."""

    vendor: ClassVar[str]
    position: ClassVar[str]
    placeholder: ClassVar[str] = "%s"

    @staticmethod
    @abstractmethod
    def suits(connection: BaseDatabaseWrapper, model: type[Model], now: datetime) -> bool:
        """Whether this order is the one to delete in (most rows have expired)."""

    @abstractmethod
    def _ranges(self, batch_size: int) -> range:
        """The starts of the ranges, their step being the range's step."""

    def _literal(self, start: int) -> Any:
        return start

    def batches(self, batch_size: int) -> Iterator[int]:
        starts = self._ranges(batch_size)
        ops = self.connection.ops
        table = ops.quote_name(self.model._meta.db_table)
        expire_date = ops.quote_name(cast("Field[Any, Any]", self.model._meta.get_field("expire_date")).column)
        delete = f"DELETE FROM {table} WHERE {expire_date} < %s AND {self.position} >= {self.placeholder}"
        expired_before = ops.adapt_datetimefield_value(self.now)
        for start in starts:
            final = start + starts.step >= starts.stop
            with self.connection.cursor() as cursor:
                cursor.execute(
                    delete if final else f"{delete} AND {self.position} < {self.placeholder}",
                    [expired_before, self._literal(start)] + ([] if final else [self._literal(start + starts.step)]),
                )
                yield cursor.rowcount


class RowidRanges(TableOrderRanges):
    """SQLite, most rows expired: batches of ``batch_size`` consecutive rowids.

    Measured at 1,000,000 expired rows: these batches cost about what one whole-table ``DELETE`` costs (11.5 s
    against 10.3 s), where batches of expire_date index ranges cost 17.9 s.
    """

    vendor = "sqlite"
    position = "rowid"

    @staticmethod
    def suits(connection: BaseDatabaseWrapper, model: type[Model], now: datetime) -> bool:
        """Whether at least half of the table's rowids hold expired sessions (counted on the expire_date index;
        SQLite's planner, without statistics, would use that index for any share)."""
        first, last = _rowid_span(connection, model)
        expired = model._default_manager.using(connection.alias).filter(expire_date__lt=now)
        return first is not None and expired.count() * 2 >= cast(int, last) - first + 1

    def _ranges(self, batch_size: int) -> range:
        first, last = _rowid_span(self.connection, self.model)
        return range(0) if first is None else range(first, cast(int, last) + 1, batch_size)


def _rowid_span(connection: BaseDatabaseWrapper, model: type[Model]) -> tuple[int | None, int | None]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(rowid), max(rowid) FROM {connection.ops.quote_name(model._meta.db_table)}")
        return cast("tuple[int | None, int | None]", cursor.fetchone())  # (None, None) for an empty table


class PageRanges(TableOrderRanges):
    """PostgreSQL, most rows expired: batches of consecutive table pages.

    A batch scans its pages as one whole-table ``DELETE`` would (a TID range scan), deleting the expired rows
    there. About ``batch_size`` rows per batch, from the table's statistics; a batch never holds more than its pages
    can (at most a few hundred rows per 8 KB page).
    """

    vendor = "postgresql"
    position = "ctid"
    placeholder = "%s::tid"

    @staticmethod
    def suits(connection: BaseDatabaseWrapper, model: type[Model], now: datetime) -> bool:
        """Whether PostgreSQL would delete the expired rows (as ``clearsessions`` does, in one statement) by reading
        the whole table rather than through the expire_date index: when most rows have expired."""
        table = connection.ops.quote_name(model._meta.db_table)
        expire_date = connection.ops.quote_name(cast("Field[Any, Any]", model._meta.get_field("expire_date")).column)
        with connection.cursor() as cursor:
            cursor.execute(
                f"EXPLAIN (FORMAT JSON) DELETE FROM {table} WHERE {expire_date} < %s",
                [connection.ops.adapt_datetimefield_value(now)],
            )
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        node: dict[str, Any] = plan[0]["Plan"]
        while node.get("Plans") and node.get("Node Type") == "ModifyTable":
            node = node["Plans"][0]
        return node.get("Node Type") == "Seq Scan"

    def _literal(self, start: int) -> str:
        return f"({start},0)"

    def _ranges(self, batch_size: int) -> range:
        table = self.connection.ops.quote_name(self.model._meta.db_table)
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int, c.relpages, c.reltuples "
                "FROM pg_class c WHERE c.oid = %s::regclass",
                [table],
            )
            pages, counted_pages, rows = cursor.fetchone()
            if counted_pages > 0 and rows > 0:
                rows_per_page = rows / counted_pages
            else:  # never analyzed: count the rows of the first pages
                sample = min(max(pages, 1), 16)
                cursor.execute(f"SELECT count(*) FROM {table} WHERE ctid < %s::tid", [f"({sample},0)"])
                rows_per_page = cursor.fetchone()[0] / sample
        step = max(1, round(batch_size / max(rows_per_page, 1.0)))
        return range(0, max(pages, 1), step)


TABLE_ORDERS: tuple[type[TableOrderRanges], ...] = (PageRanges, RowidRanges)


def table_order(connection: BaseDatabaseWrapper, model: type[Model], now: datetime) -> TableOrderRanges | None:
    """The deletion in the table's own order when the database has one and most rows have expired; else None."""
    for order in TABLE_ORDERS:
        if connection.vendor == order.vendor and order.suits(connection, model, now):
            return order(connection, model, now)
    return None


def deletion_for(connection: BaseDatabaseWrapper, model: type[Model], now: datetime) -> Deletion:
    """The fastest way to delete the rows of ``model`` expired before ``now`` on ``connection``."""
    in_table_order = table_order(connection, model, now)
    if in_table_order is not None:
        return in_table_order
    by_expiry = MySQLKeyLists if connection.vendor == "mysql" else ExpiryRanges
    return by_expiry(connection, model, now)
