"""The session store accesses of a process's connections, batched into few round trips to the store.

A reconnect storm makes thousands of connections send CONNECT at once: each needs its session's row, expiry, user
and auth hash, and with an ``ACTIVITY`` policy each CONNECT also extends its session. One access of each kind is in
flight per event loop; what is asked meanwhile waits and goes together in the next one (at most
:data:`BATCH_SIZE` sessions), so the store sees a few large queries instead of thousands of small ones, and the
batches grow with the load. Revalidations at their timers and extensions on later activity take the same paths.
Each access goes through ``database_sync_to_async``, which closes stale database connections around it, as Django
does around a request.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Generic, TypeVar

from channels.db import database_sync_to_async

from ..sessions import SessionState, extend_sessions, read_sessions

#: Sessions per access (the db engines query them with one ``IN``; SQLite allows 999 parameters per query).
BATCH_SIZE = 500

Asked = TypeVar("Asked")
Answer = TypeVar("Answer")


class Batched(Generic[Asked, Answer]):
    """Calls of ``access(list of asked) -> {session key: answer}``, one in flight at a time, with what was asked
    meanwhile (by session key: the last ask of a key wins) batched into the next."""

    def __init__(
        self, access: Callable[[list[Asked]], Mapping[str, Answer | None]], key: Callable[[Asked], str]
    ) -> None:
        self._access = access
        self._key = key
        self._waiting: dict[str, tuple[Asked, list[asyncio.Future[Answer | None]]]] = {}
        self._running = False
        self._task: asyncio.Task[None] | None = None  # (a reference: the loop keeps only weak ones)
        #: Accesses done and sessions in them, for tests and operators.
        self.batches = self.sessions = 0

    async def ask(self, asked: Asked) -> Answer | None:
        """The answer for ``asked`` (None when the access gave none for its key)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer | None] = loop.create_future()
        key = self._key(asked)
        futures = self._waiting[key][1] if key in self._waiting else []
        futures.append(future)
        self._waiting[key] = (asked, futures)
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # the connections woken in this turn of the loop add theirs
                batch = {key: self._waiting.pop(key) for key in list(self._waiting)[:BATCH_SIZE]}
                try:
                    answers = await database_sync_to_async(self._access)([asked for asked, _ in batch.values()])
                except Exception as error:
                    for _, futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(error)
                    continue
                self.batches += 1
                self.sessions += len(batch)
                for key, (_, futures) in batch.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(answers.get(key))
        finally:
            self._running = False


class SessionReads(Batched[str, SessionState]):
    """Batched :func:`~django_stomp_push.sessions.read_session` for one event loop."""

    def __init__(self) -> None:
        super().__init__(lambda keys: read_sessions(keys), str)

    async def read(self, key: str) -> SessionState | None:
        """The state of session ``key`` (None: gone, expired, or its user no longer valid)."""
        return await self.ask(key)


class SessionExtensions(Batched[SessionState, datetime]):
    """Batched :func:`~django_stomp_push.sessions.extend_session` for one event loop."""

    def __init__(self) -> None:
        super().__init__(lambda states: extend_sessions(states), lambda state: state.key)

    async def extend(self, state: SessionState) -> datetime | None:
        """The session's new expiry, or None when it was not extended (gone, expired, absolute expiry, or an engine
        that cannot extend)."""
        return await self.ask(state)


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[SessionReads, SessionExtensions]] = (
    weakref.WeakKeyDictionary()
)


def _of_running_loop() -> tuple[SessionReads, SessionExtensions]:
    loop = asyncio.get_running_loop()
    batchers = _batchers.get(loop)
    if batchers is None:
        batchers = _batchers[loop] = (SessionReads(), SessionExtensions())
    return batchers


def session_reads() -> SessionReads:
    """The batched session reader of the running event loop."""
    return _of_running_loop()[0]


def session_extensions() -> SessionExtensions:
    """The batched session extender of the running event loop."""
    return _of_running_loop()[1]
