"""``manage.py expire_push_sessions``: delete expired sessions in batches and close their connections everywhere."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from concurrent.futures import Future, wait
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import router, transaction
from django.db.models import Q
from django.utils import timezone

from ...consumer import SESSION_EXPIRED
from ...layers import get_layer, is_process_local
from ...push import aend_sessions
from ...sessions import _is_db_store, _is_file_store, engine_name, store_class

#: Expired sessions per batch by default. Each batch costs a few queries whatever its size: with 1,000, those
#: round trips made a 1,000,000-row sweep on PostgreSQL several times slower than one DELETE.
DEFAULT_BATCH_SIZE = 10_000
MAX_BATCH_SIZE = 100_000
#: Sessions per close broadcast: a batch's closes go out in channel-layer messages of at most this many keys, so
#: each message stays small (tens of KB) and a hub handles one without holding its event loop for long.
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
                f"Expired sessions deleted per batch (1 to {MAX_BATCH_SIZE}; default {DEFAULT_BATCH_SIZE}); their "
                f"closes are broadcast in messages of at most {BROADCAST_SIZE}. Memory grows with it."
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
            broadcast = not is_process_local(get_layer())
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        if not broadcast and not dry_run:
            self.stderr.write(
                self.style.WARNING(
                    "The in-memory channel layer cannot reach the server processes: expired sessions are deleted, "
                    "but this command closes no connection (they close by their own expiry timers). Configure "
                    "channels-redis to broadcast closes."
                )
            )
        started = time.monotonic()
        self._closer = _Closer() if broadcast and not dry_run else None
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
        elapsed = time.monotonic() - started
        if dry_run:
            self.stdout.write(f"{found} expired sessions would be deleted (dry run, {elapsed:.2f}s).")
        else:
            closed = "and broadcast their closes" if broadcast else "(no closes broadcast: in-memory layer)"
            self.stdout.write(
                self.style.SUCCESS(f"Deleted {found} expired sessions in {batches} batches {closed} ({elapsed:.2f}s).")
            )

    def _progress(self, verbosity: int, batches: int, found: int) -> None:
        if verbosity >= 2:
            self.stdout.write(f"batch {batches}: {found} expired sessions so far")

    def _start_close(self, keys: list[str]) -> Future[None] | None:
        """Start broadcasting the closes of ``keys`` (when there is a layer to broadcast to); see :meth:`_closed`."""
        return self._closer.start(keys) if self._closer is not None and keys else None

    def _closed(self, broadcasting: Future[None] | None) -> None:
        """Wait until the broadcast started by :meth:`_start_close` is sent."""
        if broadcasting is None:
            return
        try:
            broadcasting.result()
        except Exception as exc:
            raise CommandError(f"could not broadcast session closes through the channel layer: {exc}") from exc

    def _sweep_db(self, cls: Any, batch_size: int, dry_run: bool, verbosity: int):
        model = cls.get_model_class()
        db = router.db_for_write(model)
        now = timezone.now()
        sessions = model.objects.using(db)
        if dry_run:
            found = sessions.filter(expire_date__lt=now).count()
            batches = math.ceil(found / batch_size)
            for batch in range(1, batches + 1):
                self._progress(verbosity, batch, min(found, batch * batch_size))
            return found, batches
        # Batches in (expire_date, session_key) order, oldest first, each the next ``batch_size`` expired rows
        # after the previous batch (keyset pagination: memory stays flat however many rows there are). Each is
        # deleted as a range of the expire_date index: the rows of one batch are together in that index (and,
        # usually, in the table), and PostgreSQL's scans skip the dead entries of the batches before.
        expired = sessions.filter(expire_date__lt=now).order_by("expire_date", "session_key")
        found = batches = deleted = 0
        after: tuple[datetime, str] | None = None
        failed: CommandError | None = None
        while True:
            with transaction.atomic(using=db):
                began = time.monotonic()
                while time.monotonic() - began < self.COMMIT_INTERVAL:
                    page = expired if after is None else expired.filter(_after(*after), expire_date__gte=after[0])
                    keys = list(page.values_list("session_key", flat=True)[:batch_size])
                    if not keys:
                        break
                    # The batch's last row bounds the range; selecting every row's datetime with the keys would
                    # cost more than this lookup.
                    last = sessions.filter(pk=keys[-1]).values_list("expire_date", flat=True).first()
                    if last is None or last >= now:
                        continue  # that row was deleted or renewed meanwhile: read the batch again
                    # The closes go out while the rows are deleted, and the batch ends when both are done. They
                    # are expired sessions: closing them is right even if this transaction were rolled back.
                    broadcasting = self._start_close(keys)
                    try:
                        # A raw delete: no post_delete per row and no rows loaded into memory; the closes are
                        # broadcast by the batch (BROADCAST_SIZE keys per message). Every expired row in the range
                        # is one of ``keys``.
                        doomed = sessions.filter(_up_to(last, keys[-1]), expire_date__lte=last)
                        if after is not None:
                            doomed = doomed.filter(_after(*after), expire_date__gte=after[0])
                        if doomed._raw_delete(db) < len(keys):
                            # Rows the range missed (e.g. written by another program with another datetime
                            # format): by key, so that each batch removes every one of its rows.
                            sessions.filter(pk__in=keys, expire_date__lt=now)._raw_delete(db)
                    except Exception as exc:
                        raise CommandError(f"deleting expired sessions failed after {deleted}: {exc}") from exc
                    batches += 1
                    found += len(keys)
                    after = (last, keys[-1])
                    try:
                        self._closed(broadcasting)
                    except CommandError as exc:
                        failed = exc  # raised once what is deleted so far is committed, this batch included
                        break
                    self._progress(verbosity, batches, found)
            deleted = found  # committed
            if failed is not None:
                raise failed
            if not keys:
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


def _after(expire_date: datetime, session_key: str) -> Q:
    """Rows after (expire_date, session_key) in the sweep's order."""
    return Q(expire_date__gt=expire_date) | Q(expire_date=expire_date, session_key__gt=session_key)


def _up_to(expire_date: datetime, session_key: str) -> Q:
    """Rows up to (expire_date, session_key) included, in the sweep's order."""
    return Q(expire_date__lt=expire_date) | Q(expire_date=expire_date, session_key__lte=session_key)


class _Closer:
    """Broadcasts session closes from an event loop of its own, in a thread, while the command goes on.

    One loop for every batch (``async_to_sync`` would start a loop, and channels-redis a connection, for each),
    and the batch's database work is done meanwhile instead of waiting for Redis.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="expire_push_sessions closes", daemon=True)
        self.thread.start()
        self.last: Future[None] | None = None

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
