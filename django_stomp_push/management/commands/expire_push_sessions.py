"""``manage.py expire_push_sessions``: delete expired sessions in batches and close their connections everywhere.

The work is the session engine's :class:`~django_stomp_push.sessions.sweep.Sweep`; this is the command around it.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...sessions import engine_name, session_engine
from ...sessions.sweep import Closes, SweepError

#: Expired sessions per batch by default. Each batch costs a statement or two whatever its size, and nothing of a
#: batch is held in memory (the file engine holds its keys, 32 bytes each): at 1,000,000 expired rows on
#: PostgreSQL, batches of 50,000 saved a tenth of a second over 10,000, and batches of 1,000 cost several times one
#: DELETE.
DEFAULT_BATCH_SIZE = 50_000
MAX_BATCH_SIZE = 100_000


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
            default=DEFAULT_BATCH_SIZE,
            help=(
                f"Expired sessions deleted per batch (1 to {MAX_BATCH_SIZE}; default {DEFAULT_BATCH_SIZE}). When "
                "most rows have expired, a batch is a range of the table holding about that many rows."
            ),
        )

    def handle(self, *args: Any, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, **options: Any) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}")
        self.verbosity = int(options.get("verbosity", 1))
        try:
            engine = session_engine()
        except Exception as exc:
            raise CommandError(f"SESSION_ENGINE {settings.SESSION_ENGINE!r} cannot be imported: {exc}") from exc
        try:
            closes = Closes.through_configured_layer()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        sweep = engine.sweep()
        if sweep is None:
            self._report(
                f"The {engine_name()} session engine keeps no sweepable store: sessions expire on their own and "
                "bound connections close by their own expiry timers. Nothing to do."
            )
            return
        if not closes.broadcast and not dry_run:
            self._warn_in_memory()
        started = time.monotonic()
        try:
            if dry_run:
                found, batches = sweep.count(batch_size, self._progress)
            else:
                found, batches = sweep.run(batch_size, closes, self._progress)
        except SweepError as exc:
            raise CommandError(str(exc)) from exc
        if closes.local:  # a process-local layer under another name
            self._warn_in_memory()
        elapsed = time.monotonic() - started
        if dry_run:
            self._report(f"{found} expired sessions would be deleted (dry run, {elapsed:.2f}s).")
        else:
            closed = "and broadcast their closes" if closes.reach_servers else "(no closes broadcast: in-memory layer)"
            self._report(
                self.style.SUCCESS(f"Deleted {found} expired sessions in {batches} batches {closed} ({elapsed:.2f}s).")
            )

    def _report(self, message: str) -> None:
        # -v0 is for cron, which mails whatever a job prints: a successful run says nothing (warnings and errors
        # still go to stderr).
        if self.verbosity >= 1:
            self.stdout.write(message)

    def _progress(self, batches: int, found: int) -> None:
        if self.verbosity >= 2:
            self.stdout.write(f"batch {batches}: {found} expired sessions so far")

    def _warn_in_memory(self) -> None:
        self.stderr.write(
            self.style.WARNING(
                "The in-memory channel layer cannot reach the server processes: expired sessions are deleted, "
                "but this command closes no connection (they close by their own expiry timers). Configure "
                "channels-redis to broadcast closes."
            )
        )
