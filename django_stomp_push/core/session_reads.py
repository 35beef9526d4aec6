"""The session reads of a process's connections, batched into one round trip to the session store.

A reconnect storm makes thousands of connections send CONNECT at once, and each needs its session's row, expiry,
user and auth hash. One read at a time is in flight per event loop; the keys asked for meanwhile wait and go
together in the next one (at most :data:`BATCH_SIZE`), so the store sees a few large queries instead of thousands
of small ones, and the batches grow with the load. Revalidations at their timers use the same path. Each read goes
through ``database_sync_to_async``, which closes stale database connections around it, as Django does around a
request.
"""

from __future__ import annotations

import asyncio
import weakref

from channels.db import database_sync_to_async

from ..sessions import SessionState, read_sessions

#: Session keys per read (the db engines query them with one ``IN``; SQLite allows 999 parameters per query).
BATCH_SIZE = 500


class SessionReads:
    """Batched :func:`~django_stomp_push.sessions.read_session` for one event loop."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[SessionState | None]]] = {}
        self._reading = False
        #: Reads done and keys read, for tests and operators.
        self.batches = self.keys_read = 0

    async def read(self, key: str) -> SessionState | None:
        """The state of session ``key`` (None: gone, expired, or its user no longer valid)."""
        future: asyncio.Future[SessionState | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if not self._reading:
            self._reading = True
            asyncio.get_running_loop().create_task(self._read_all())
        return await future

    async def _read_all(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # the connections woken in this turn of the loop add their keys
                batch = {key: self._waiting.pop(key) for key in list(self._waiting)[:BATCH_SIZE]}
                try:
                    states = await database_sync_to_async(read_sessions)(list(batch))
                except Exception as error:
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(error)
                    continue
                self.batches += 1
                self.keys_read += len(batch)
                for key, futures in batch.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(states.get(key))
        finally:
            self._reading = False


_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SessionReads] = weakref.WeakKeyDictionary()


def session_reads() -> SessionReads:
    """The batched session reader of the running event loop."""
    loop = asyncio.get_running_loop()
    reader = _readers.get(loop)
    if reader is None:
        reader = _readers[loop] = SessionReads()
    return reader
