"""``manage.py expire_push_sessions``: delete expired sessions in batches and close their connections everywhere."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.db.models.sql.subqueries import DeleteQuery
from django.utils import timezone

from ...close_reasons import SESSION_EXPIRED
from ...layers import IN_MEMORY_BACKEND, get_layer, is_process_local, layer_backend
from ...push import aend_sessions, asessions_swept
from ...sessions import _is_db_store, _is_file_store, engine_name, store_class

#: Expired sessions per batch by default. Each batch costs a statement or two whatever its size, and nothing of a
#: batch is held in memory (the file engine holds its keys, 32 bytes each): at 1,000,000 expired rows on
#: PostgreSQL, batches of 50,000 saved a tenth of a second over 10,000, and batches of 1,000 cost several times one
#: DELETE.
DEFAULT_BATCH_SIZE = 50_000
MAX_BATCH_SIZE = 100_000
#: File engine: keys per close broadcast (each message stays tens of KB, and a hub handles one without holding
#: its event loop for long). The database engines send one notice per commit instead (see the hub).
BROADCAST_SIZE = 1000


class Command(BaseCommand):
    #: Deletes are committed when a transaction has run this long (seconds). A transaction per batch makes SQLite
    #: write and fsync the same index pages again for every batch (several times slower than one DELETE); one for
    #: the whole sweep would keep other writers out of an SQLite database until the end.
    COMMIT_INTERVAL = 3.0

    help = (
        "Delete expired Django sessions in bounded batches and close every STOMP connection bound to them, on "
        "every server, with ERROR 'session expired' and WebSocket close 1008. A drop-in replacement for "
        "'clearsessions' for the db and cached_db engines (run it from cron instead); for the file engine it "
        "removes expired session files the same way. The cache engine expires sessions by itself and "
        "signed_cookies sessions live in the browser: for those it has nothing to sweep, and connections are "
        "closed by their own expiry timers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the expired sessions; delete and close nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=(
                f"Expired sessions deleted per batch (1 to {MAX_BATCH_SIZE}; default {DEFAULT_BATCH_SIZE}). When "
                "most rows have expired, a batch is a range of the table holding about that many rows."
            ),
        )

    def handle(self, *args: Any, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, **options: Any) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}")
        verbosity = int(options.get("verbosity", 1))
        try:
            cls = store_class()
        except Exception as exc:
            raise CommandError(f"SESSION_ENGINE {settings.SESSION_ENGINE!r} cannot be imported: {exc}") from exc
        try:
            broadcast = _reaches_servers()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        if not broadcast and not dry_run:
            self._warn_in_memory()
        started = time.monotonic()
        self._broadcasts = broadcast and not dry_run
        self._closer: _Closer | None = None  # started by the first batch that deletes something
        try:
            if _is_db_store(cls):
                found, batches = self._sweep_db(cls, batch_size, dry_run, verbosity)
            elif _is_file_store(cls):
                found, batches = self._sweep_files(cls, batch_size, dry_run, verbosity)
            else:
                self.stdout.write(
                    f"The {engine_name()} session engine keeps no sweepable store: sessions expire on their own and "
                    "bound connections close by their own expiry timers. Nothing to do."
                )
                return
        finally:
            if self._closer is not None:
                self._closer.stop()
        if self._closer is not None and self._closer.local:  # a process-local layer under another name
            broadcast = False
            self._warn_in_memory()
        elapsed = time.monotonic() - started
        if dry_run:
            self.stdout.write(f"{found} expired sessions would be deleted (dry run, {elapsed:.2f}s).")
        else:
            closed = "and broadcast their closes" if broadcast else "(no closes broadcast: in-memory layer)"
            self.stdout.write(
                self.style.SUCCESS(f"Deleted {found} expired sessions in {batches} batches {closed} ({elapsed:.2f}s).")
            )

    def _warn_in_memory(self) -> None:
        self.stderr.write(
            self.style.WARNING(
                "The in-memory channel layer cannot reach the server processes: expired sessions are deleted, "
                "but this command closes no connection (they close by their own expiry timers). Configure "
                "channels-redis to broadcast closes."
            )
        )

    def _progress(self, verbosity: int, batches: int, found: int) -> None:
        if verbosity >= 2:
            self.stdout.write(f"batch {batches}: {found} expired sessions so far")

    def _deleted_some(self) -> None:
        """Rows are deleted: get the channel layer ready for the broadcast that follows. It is created (its backend
        imported: redis-py alone takes a tenth of a second) in the closer's thread while the next batches are
        deleted; a sweep that deletes nothing never creates it."""
        if self._broadcasts and self._closer is None:
            self._closer = _Closer()

    def _start_swept(self) -> Future[None] | None:
        """Start telling every hub that expired sessions were deleted (when there is a layer to broadcast to)."""
        self._deleted_some()
        return self._closer.start_swept() if self._closer is not None else None

    def _start_close(self, keys: list[str]) -> Future[None] | None:
        """Start broadcasting the closes of ``keys`` (when there is a layer to broadcast to); see :meth:`_closed`."""
        if keys:
            self._deleted_some()
        return self._closer.start(keys) if self._closer is not None and keys else None

    def _closed(self, broadcasting: Future[None] | None) -> None:
        """Wait until the broadcast started by :meth:`_start_close` is sent."""
        if broadcasting is None:
            return
        try:
            self._closer.ready.result()
            broadcasting.result()
        except Exception as exc:
            raise CommandError(f"could not broadcast session closes through the channel layer: {exc}") from exc

    def _sweep_db(self, cls: Any, batch_size: int, dry_run: bool, verbosity: int):
        model = cls.get_model_class()
        db = router.db_for_write(model)
        now = timezone.now()
        sessions = model.objects.using(db)
        expired = sessions.filter(expire_date__lt=now)
        if dry_run:
            found = expired.count()
            batches = math.ceil(found / batch_size)
            for batch in range(1, batches + 1):
                self._progress(verbosity, batch, min(found, batch * batch_size))
            return found, batches
        connection = connections[db]
        batches_of = _table_order_batches(connection, model, expired, now, batch_size)
        if batches_of is None:
            batches_of = _range_batches(sessions, now, batch_size, connection, db)
        # Nothing is read back: each server's hub checks the sessions of its own connections when told that a
        # commit deleted some (one message per commit), so the cost here is the deletes', as for clearsessions.
        found = batches = 0
        done = False
        while not done:
            deleted = 0
            with transaction.atomic(using=db):
                began = time.monotonic()
                while not deleted or time.monotonic() - began < self.COMMIT_INTERVAL:
                    try:
                        count = next(batches_of)  # deletes the next batch
                    except StopIteration:
                        done = True
                        break
                    except Exception as exc:
                        raise CommandError(f"deleting expired sessions failed after {found}: {exc}") from exc
                    if count:
                        self._deleted_some()
                        batches += 1
                        found += count
                        deleted += count
                        self._progress(verbosity, batches, found)
            if deleted:
                self._closed(self._start_swept())
        return found, batches

    def _sweep_files(self, cls: Any, batch_size: int, dry_run: bool, verbosity: int):
        storage = cls._get_storage_path()
        prefix = settings.SESSION_COOKIE_NAME
        found = batches = 0
        keys: list[str] = []
        now = timezone.now()
        for name in os.listdir(storage):
            if not name.startswith(prefix):
                continue
            key = name[len(prefix) :]
            store = cls(key)
            path = os.path.join(storage, name)
            try:  # read, not load(): load() deletes expired files even in a dry run, and creates new ones
                modified = datetime.fromtimestamp(os.path.getmtime(path), tz=timezone.get_current_timezone())
                with open(path, encoding="ascii") as session_file:
                    raw = session_file.read()
            except (OSError, UnicodeDecodeError):
                continue
            data = store.decode(raw) if raw else {}
            if store.get_expiry_date(modification=modified, expiry=data.get("_session_expiry")) > now:
                continue
            keys.append(key)
            if not dry_run:
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
            if len(keys) >= batch_size:
                batches += 1
                found += len(keys)
                if not dry_run:
                    self._closed(self._start_close(keys))
                self._progress(verbosity, batches, found)
                keys = []
        if keys:
            batches += 1
            found += len(keys)
            if not dry_run:
                self._closed(self._start_close(keys))
            self._progress(verbosity, batches, found)
        return found, batches


def _reaches_servers() -> bool:
    """Whether the channel layer can reach other processes (not the in-memory layer); RuntimeError when there is
    no layer. From the settings: the layer itself is created later, in the closer's thread."""
    return layer_backend() != IN_MEMORY_BACKEND


def _range_batches(
    sessions: QuerySet, now: datetime, batch_size: int, connection: BaseDatabaseWrapper, db: str
) -> Iterator[int]:
    """Delete the sessions expired before ``now`` in batches, oldest first; yield how many each batch deleted.

    Each batch is a range of the expire_date index, [after, bound), where ``bound`` is the expire_date
    ``batch_size`` rows further on. Memory stays flat however many rows there are, and a batch's scans start where
    the previous batch ended instead of walking past the entries of the rows deleted before (PostgreSQL keeps them
    in the index until the transaction ends). Raw deletes: no ``post_delete`` per row, no rows loaded.
    """
    expired = sessions.filter(expire_date__lt=now)
    after: datetime | None = None
    while True:
        remaining = expired if after is None else expired.filter(expire_date__gte=after)
        dates = remaining.order_by("expire_date").values_list("expire_date", flat=True)
        bound = next(iter(dates[batch_size:][:1]), None)
        if bound is None:  # at most batch_size rows left
            yield remaining._raw_delete(db)
            return
        count = remaining.filter(expire_date__lt=bound)._raw_delete(db)
        if count:
            after = bound
        else:
            # More than batch_size rows expire at ``after``; or the bound, read back through Django, is not how the
            # database compares it (e.g. a datetime another program wrote in another text format): the next
            # batch_size rows by key.
            page = remaining.order_by("expire_date").values_list("pk", flat=True)[:batch_size]
            if connection.vendor == "mysql":  # no LIMIT in an IN subquery
                page = list(page)
            count = sessions.filter(pk__in=page, expire_date__lt=now)._raw_delete(db)
        yield count


def _table_order_batches(
    connection: BaseDatabaseWrapper, model: Any, expired: QuerySet, now: datetime, batch_size: int
) -> Iterator[int] | None:
    """When most rows have expired, batches in the table's own order (PostgreSQL's pages, SQLite's rowids), which
    cost what one whole-table ``DELETE`` costs; None otherwise (then ranges of the expire_date index)."""
    if connection.vendor == "postgresql" and _planned_as_table_scan(connection, expired):
        return _heap_batches(connection, model, now, batch_size)
    if connection.vendor == "sqlite" and _mostly_expired(connection, model, expired):
        return _rowid_batches(connection, model, now, batch_size)
    return None


def _rowid_span(connection: BaseDatabaseWrapper, model: Any) -> tuple[int | None, int | None]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(rowid), max(rowid) FROM {connection.ops.quote_name(model._meta.db_table)}")
        return cursor.fetchone()


def _mostly_expired(connection: BaseDatabaseWrapper, model: Any, expired: QuerySet) -> bool:
    """SQLite: whether at least half of the table's rowids hold expired sessions (counted on the expire_date
    index; SQLite's planner, without statistics, would use that index for any share)."""
    first, last = _rowid_span(connection, model)
    return first is not None and expired.count() * 2 >= last - first + 1


def _rowid_batches(connection: BaseDatabaseWrapper, model: Any, now: datetime, batch_size: int) -> Iterator[int]:
    """SQLite, most rows expired: delete them in batches of ``batch_size`` consecutive rowids (the table's own
    order); yield how many each batch deleted.

    Measured at 1,000,000 expired rows: these batches cost about what one whole-table ``DELETE`` costs (11.5 s
    against 10.3 s), where batches of expire_date index ranges cost 17.9 s.
    """
    first, last = _rowid_span(connection, model)
    if first is not None:
        starts = range(first, last + 1, batch_size)
        yield from _delete_in_ranges(connection, model, now, "rowid", "%s", starts, batch_size)


def _delete_in_ranges(
    connection: BaseDatabaseWrapper,
    model: Any,
    now: datetime,
    position: str,
    placeholder: str,
    starts: range,
    step: int,
    literal: Callable[[int], Any] = lambda value: value,
) -> Iterator[int]:
    """Delete the rows expired before ``now`` in consecutive ranges [start, start + step) of the physical position
    ``position`` (SQLite's rowid, PostgreSQL's ctid, given as ``literal(n)`` in ``placeholder``); yield how many
    each range deleted. The last range is open: it takes rows added meanwhile too."""
    table = connection.ops.quote_name(model._meta.db_table)
    expire_date = connection.ops.quote_name(model._meta.get_field("expire_date").column)
    delete = f"DELETE FROM {table} WHERE {expire_date} < %s AND {position} >= {placeholder}"
    expired_before = connection.ops.adapt_datetimefield_value(now)
    for start in starts:
        final = start + step >= starts.stop
        with connection.cursor() as cursor:
            cursor.execute(
                delete if final else f"{delete} AND {position} < {placeholder}",
                [expired_before, literal(start)] + ([] if final else [literal(start + step)]),
            )
            yield cursor.rowcount


def _planned_as_table_scan(connection: BaseDatabaseWrapper, expired: QuerySet) -> bool:
    """Whether PostgreSQL would delete ``expired`` (as ``clearsessions`` does, in one statement) by reading the whole
    table rather than through the expire_date index: when most rows have expired."""
    sql, params = expired.query.chain(DeleteQuery).get_compiler(connection.alias).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    node = plan[0]["Plan"]
    while node.get("Plans") and node.get("Node Type") == "ModifyTable":
        node = node["Plans"][0]
    return node.get("Node Type") == "Seq Scan"


def _heap_batches(connection: BaseDatabaseWrapper, model: Any, now: datetime, batch_size: int) -> Iterator[int]:
    """PostgreSQL, most rows expired: delete them in batches of consecutive table pages; yield how many each
    batch deleted.

    A batch scans its pages as one whole-table ``DELETE`` would (a TID range scan), deleting the expired rows
    there. About ``batch_size`` rows per batch, from the table's statistics; a batch never holds
    more than its pages can (at most a few hundred rows per 8 KB page).
    """
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
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
    starts = range(0, max(pages, 1), step)
    yield from _delete_in_ranges(connection, model, now, "ctid", "%s::tid", starts, step, lambda page: f"({page},0)")


class _Closer:
    """Broadcasts session closes from an event loop of its own, in a thread, while the command goes on.

    One loop for every batch (``async_to_sync`` would start a loop, and channels-redis a connection, for each),
    and the batch's database work is done meanwhile instead of waiting for Redis.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="expire_push_sessions closes", daemon=True)
        self.thread.start()
        self.local = False
        self.ready: Future[None] = asyncio.run_coroutine_threadsafe(self._prepare(), self.loop)
        self.last: Future[None] | None = self.ready

    async def _prepare(self) -> None:
        self.local = is_process_local(get_layer())

    def start_swept(self) -> Future[None]:
        self.last = asyncio.run_coroutine_threadsafe(asessions_swept(SESSION_EXPIRED), self.loop)
        return self.last

    def start(self, keys: list[str]) -> Future[None]:
        self.last = asyncio.run_coroutine_threadsafe(self._broadcast(keys), self.loop)
        return self.last

    @staticmethod
    async def _broadcast(keys: list[str]) -> None:
        for start in range(0, len(keys), BROADCAST_SIZE):
            await aend_sessions(keys[start : start + BROADCAST_SIZE], SESSION_EXPIRED)

    def stop(self) -> None:
        if self.last is not None:
            wait([self.last])  # e.g. the delete beside it failed: let the broadcast end, not die mid-send
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()  # channels-redis closes its connections with the loop
