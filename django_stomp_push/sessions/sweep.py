"""What ``expire_push_sessions`` does for an engine: delete its expired sessions in batches, and have the servers
close their connections. One interface, :class:`Sweep`; an engine's :meth:`~.engines.SessionEngine.sweep` gives its
own (None when it has nothing to sweep).

- :class:`DatabaseSweep` (db, cached_db) deletes rows in batches (see :mod:`.deletion`), commits every
  :attr:`~DatabaseSweep.COMMIT_INTERVAL` seconds, and after each commit sends **one** notice to every hub, which
  checks the sessions of its own connections: the work grows with the connections, not with the rows deleted.
- :class:`FileSweep` removes expired session files and broadcasts the closes of their keys per batch.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Model
from django.utils import timezone

from .. import layer_messages, sync_layer
from ..close_reasons import SESSION_EXPIRED
from ..destinations import HUBS_GROUP
from ..layers import IN_MEMORY_BACKEND, get_layer, is_process_local, layer_backend
from ..push import session_end_messages
from .deletion import deletion_for

if TYPE_CHECKING:
    from .engines import FileEngine

#: Called after each batch with the number of batches so far and the expired sessions found so far.
Progress = Callable[[int, int], None]


class SweepError(Exception):
    """A sweep that stopped; what it committed before stays deleted."""


def reaches_servers() -> bool:
    """Whether the channel layer can reach other processes (not the in-memory layer); RuntimeError when there is
    no layer. From the settings: the layer itself is created by the first broadcast."""
    return layer_backend() != IN_MEMORY_BACKEND


class Closes:
    """Tells every server what a sweep deleted, through this process's one channel-layer loop
    (:mod:`~django_stomp_push.sync_layer`), each send bounded by ``LAYER_TIMEOUT``; sends nothing when ``broadcast``
    is false.

    The layer is created by the first broadcast (a channels-redis layer takes some 60 ms to import and build): a
    sweep that deletes nothing never creates it.
    """

    def __init__(self, broadcast: bool) -> None:
        self.broadcast = broadcast
        #: The layer turned out to be process-local under another name: the closes reached no server.
        self.local = False
        self._layer_ready = False

    @classmethod
    def through_configured_layer(cls) -> Closes:
        """Closes that broadcast when the configured channel layer reaches other processes; RuntimeError when
        there is no layer."""
        return cls(broadcast=reaches_servers())

    @property
    def reach_servers(self) -> bool:
        """Whether the closes go to the servers (false for an in-memory layer, whatever its name)."""
        return self.broadcast and not self.local

    def swept(self) -> None:
        """Expired rows of the session table were deleted (and committed): each hub checks its connections."""
        self._send([(HUBS_GROUP, layer_messages.sessions_swept(SESSION_EXPIRED))])

    def ended(self, keys: list[str]) -> None:
        """The sessions ``keys`` were deleted: close their connections (1,000 keys per message)."""
        if keys:
            self._send(session_end_messages(keys, SESSION_EXPIRED))

    def _send(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        if not self.broadcast:
            return
        try:
            if not self._layer_ready:
                self.local = is_process_local(get_layer())
                self._layer_ready = True
            for group, message in messages:
                sync_layer.send(group, message, caller="expire_push_sessions")
        except Exception as exc:
            raise SweepError(f"could not broadcast session closes through the channel layer: {exc}") from exc


class Sweep(ABC):
    """Deletes an engine's expired sessions in batches and has their connections closed."""

    @abstractmethod
    def run(self, batch_size: int, closes: Closes, progress: Progress) -> tuple[int, int]:
        """Delete the expired sessions, about ``batch_size`` per batch, telling ``closes``; return (deleted, batches).
        SweepError when a delete or a broadcast fails."""

    @abstractmethod
    def count(self, batch_size: int, progress: Progress) -> tuple[int, int]:
        """What :meth:`run` would delete, deleting nothing: (expired sessions, batches)."""


class DatabaseSweep(Sweep):
    """db, cached_db: raw batched deletes of the rows, committed every :attr:`COMMIT_INTERVAL` seconds, one notice to
    every hub after each commit. Nothing is read back."""

    #: Deletes are committed when a transaction has run this long (seconds). A transaction per batch makes SQLite
    #: write and fsync the same index pages again for every batch (several times slower than one DELETE); one for
    #: the whole sweep would keep other writers out of an SQLite database until the end.
    COMMIT_INTERVAL = 3.0

    def __init__(self, model: type[Model]) -> None:
        self.model = model

    def count(self, batch_size: int, progress: Progress) -> tuple[int, int]:
        db = router.db_for_write(self.model)
        found = self.model._default_manager.using(db).filter(expire_date__lt=timezone.now()).count()
        batches = math.ceil(found / batch_size)
        for batch in range(1, batches + 1):
            progress(batch, min(found, batch * batch_size))
        return found, batches

    def run(self, batch_size: int, closes: Closes, progress: Progress) -> tuple[int, int]:
        db = router.db_for_write(self.model)
        batches_of = deletion_for(connections[db], self.model, timezone.now()).batches(batch_size)
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
                        raise SweepError(f"deleting expired sessions failed after {found}: {exc}") from exc
                    if count:
                        batches += 1
                        found += count
                        deleted += count
                        progress(batches, found)
            if deleted:
                closes.swept()
        return found, batches


class FileSweep(Sweep):
    """file: removes the expired session files of ``SESSION_FILE_PATH`` and broadcasts their keys' closes per batch
    (the keys are read anyway; a batch holds its keys, 32 bytes each)."""

    def __init__(self, engine: FileEngine) -> None:
        self.engine = engine

    def count(self, batch_size: int, progress: Progress) -> tuple[int, int]:
        return self._sweep(batch_size, None, progress)

    def run(self, batch_size: int, closes: Closes, progress: Progress) -> tuple[int, int]:
        return self._sweep(batch_size, closes, progress)

    def _sweep(self, batch_size: int, closes: Closes | None, progress: Progress) -> tuple[int, int]:
        """Find the expired files; with ``closes``, remove them and broadcast their closes per batch."""
        found = batches = 0
        expired = self._expired(remove=closes is not None)
        while keys := list(itertools.islice(expired, batch_size)):
            if closes is not None:
                closes.ended(keys)
            batches += 1
            found += len(keys)
            progress(batches, found)
        return found, batches

    def _expired(self, remove: bool) -> Iterator[str]:
        """The key of each expired session file, removed first if ``remove``. Read, not ``load()``ed: ``load()``
        removes an expired file even in a dry run, and creates new ones."""
        storage = getattr(settings, "SESSION_FILE_PATH", None) or tempfile.gettempdir()
        prefix = settings.SESSION_COOKIE_NAME
        now = timezone.now()
        try:
            names = os.listdir(storage)
        except OSError as exc:
            raise SweepError(f"cannot list the session files in {storage!r}: {exc}") from exc
        for name in names:
            if not name.startswith(prefix):
                continue
            key = name[len(prefix) :]
            store = self.engine.store_class(key)
            path = os.path.join(storage, name)
            try:
                with open(path, encoding="ascii") as session_file:
                    raw = session_file.read()
                expires_at = self.engine.expires_at(store, path, store.decode(raw) if raw else {})
            except (OSError, UnicodeDecodeError):
                continue
            if expires_at > now:
                continue
            if remove:
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
            yield key
