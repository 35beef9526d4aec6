"""``manage.py expire_push_sessions``: delete expired sessions in batches and close their connections everywhere."""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ...consumer import SESSION_EXPIRED
from ...layers import get_layer, is_process_local
from ...push import end_sessions
from ...sessions import _is_db_store, _is_file_store, engine_name, store_class


class Command(BaseCommand):
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
            default=1000,
            help="Sessions deleted and broadcast per batch (1 to 10000; default 1000). Memory grows with it.",
        )

    def handle(self, *args: Any, dry_run: bool = False, batch_size: int = 1000, **options: Any) -> None:
        if not 1 <= batch_size <= 10_000:
            raise CommandError("--batch-size must be between 1 and 10000")
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
        if _is_db_store(cls):
            found, batches = self._sweep_db(cls, batch_size, dry_run, broadcast, verbosity)
        elif _is_file_store(cls):
            found, batches = self._sweep_files(cls, batch_size, dry_run, broadcast, verbosity)
        else:
            self.stdout.write(
                f"The {engine_name()} session engine keeps no sweepable store: sessions expire on their own and "
                "bound connections close by their own expiry timers. Nothing to do."
            )
            return
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

    def _close(self, keys: list[str], broadcast: bool) -> None:
        if broadcast and keys:
            try:
                end_sessions(keys, SESSION_EXPIRED)
            except Exception as exc:
                raise CommandError(f"could not broadcast session closes through the channel layer: {exc}") from exc

    def _sweep_db(self, cls: Any, batch_size: int, dry_run: bool, broadcast: bool, verbosity: int):
        model = cls.get_model_class()
        expired = model.objects.filter(expire_date__lt=timezone.now())
        found = batches = 0
        last = ""
        while True:
            # Keyset pagination over the primary key: each batch is the next ``batch_size`` expired keys, so
            # memory stays flat however many rows there are, and the delete below is a key range, not a list.
            page = expired.filter(session_key__gt=last).order_by("session_key")
            keys = list(page.values_list("session_key", flat=True)[:batch_size])
            if not keys:
                break
            batches += 1
            found += len(keys)
            if not dry_run:
                try:
                    # A raw delete: no post_delete per row and no rows loaded into memory; the closes are
                    # broadcast below, once per batch. Every expired row in the key range is one of ``keys``.
                    doomed = expired.filter(session_key__gt=last, session_key__lte=keys[-1])
                    doomed._raw_delete(doomed.db)
                except Exception as exc:
                    raise CommandError(f"deleting expired sessions failed after {found - len(keys)}: {exc}") from exc
                self._close(keys, broadcast)
            last = keys[-1]
            self._progress(verbosity, batches, found)
        return found, batches

    def _sweep_files(self, cls: Any, batch_size: int, dry_run: bool, broadcast: bool, verbosity: int):
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
                    self._close(keys, broadcast)
                self._progress(verbosity, batches, found)
                keys = []
        if keys:
            batches += 1
            found += len(keys)
            if not dry_run:
                self._close(keys, broadcast)
            self._progress(verbosity, batches, found)
        return found, batches
