"""The Django session a connection is bound to: when it expires, whether it still exists, what extends it.

The connection knows its session's expiry date and re-reads the store when it comes (or every
``REVALIDATE_INTERVAL``): extended -> re-armed, gone or expired -> the connection ends with a reason. Client
activity may extend the session (``ACTIVITY``), throttled to one extension per ``TOUCH_INTERVAL`` and never
resurrecting a deleted session. A page subscribed to ``SESSION_DESTINATION`` gets ``status`` and ``expiring``
notices. Every store access goes through ``database_sync_to_async`` (which closes stale database connections
around its call, as Django does around a request).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from channels.db import database_sync_to_async

from ..close_reasons import SESSION_ENDED, SESSION_EXPIRED
from ..conf import Config
from ..sessions import SessionState, swept_keys
from .session_batches import session_extensions, session_reads
from .timers import Timers

logger = logging.getLogger("django_stomp_push")


class SessionBinding:
    """``end(reason)`` ends the connection; ``notify(event, body)`` tells the page (returns how many
    subscriptions got it)."""

    def __init__(
        self,
        timers: Timers,
        config: Config,
        end: Callable[[str], None],
        notify: Callable[[dict[str, Any]], int],
        name: str,
    ) -> None:
        self.timers = timers
        self.config = config
        self.end = end
        self.notify = notify
        self.name = name
        self.state: SessionState | None = None
        self.ended = False
        self._last_touch = float("-inf")
        self._notice_sent_for: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def key(self) -> str | None:
        return self.state.key if self.state is not None else None

    def start(self, state: SessionState | None) -> None:
        self.state = state
        self._arm()

    def stop(self) -> list[asyncio.Task[Any]]:
        """No more checks; returns the store accesses still running (for the caller to cancel)."""
        self.ended = True
        return list(self._tasks)

    def page_subscribed(self) -> None:
        """The page subscribed to the session destination: tell it the state, and the notice if it is due."""
        self.notify_page("status")
        self._arm()

    def notify_page(self, event: str) -> int:
        state = self.state
        if state is None or state.expires_at is None:
            return 0
        left = max(0, int(state.expires_at.timestamp() - time.time()))
        return self.notify({"event": event, "expires_at": state.expires_at.isoformat(), "seconds_left": left})

    # -- expiry and revalidation ----------------------------------------------------------------------------

    def _arm(self) -> None:
        state = self.state
        if state is None or self.ended:
            return
        delay = self.config.revalidate_interval
        if state.expires_at is not None:
            left = state.expires_at.timestamp() - time.time()
            delay = min(delay, max(0.0, left) + 0.05)
            notice = self.config.expiry_notice
            if notice is not None and self._notice_sent_for != state.expires_at:
                if left > notice:
                    delay = min(delay, left - notice)
                elif self.notify_page("expiring"):  # else: sent when the page subscribes
                    self._notice_sent_for = state.expires_at
        self.timers.set("session", delay, self._timer_fired)

    def _timer_fired(self) -> None:
        state = self.state
        notice = self.config.expiry_notice
        if state is not None and state.expires_at is not None and notice is not None:
            left = state.expires_at.timestamp() - time.time()
            if left > 0.05 and self._notice_sent_for != state.expires_at and left <= notice + 0.05:
                self._arm()  # sends the notice
                return
        self._spawn(self.revalidate())

    async def revalidate(self) -> None:
        """Re-read the session: gone or expired -> end the connection; still there -> re-arm the expiry timer."""
        old = self.state
        if old is None or self.ended:
            return
        state = await session_reads().read(old.key)
        if self.ended:
            return
        if state is None:
            expired = old.expires_at is not None and old.expires_at.timestamp() <= time.time()
            self.end(SESSION_EXPIRED if expired else SESSION_ENDED)
            return
        self.state = state
        if state.expires_at != old.expires_at:
            self.notify_page("status")
        self._arm()

    # -- activity -------------------------------------------------------------------------------------------

    def activity(self, heartbeat: bool = False) -> None:
        """The client sent a frame (or only a heart-beat): extend the session if the policy says so."""
        policy = self.config.activity
        state = self.state
        if policy == "none" or state is None or state.max_age is None:
            return
        if heartbeat and policy != "frames+heartbeats":
            return
        now = self.timers.loop.time()
        if now - self._last_touch < self.config.touch_interval:
            return
        self._last_touch = now
        self._spawn(self._touch(state))

    async def _touch(self, state: SessionState) -> None:
        expires_at = await session_extensions().extend(state)
        if self.ended:
            return
        if expires_at is None:
            await self.revalidate()  # gone, expired or not extendable: let the store decide
            return
        self.state = dataclasses.replace(state, expires_at=expires_at)
        self.notify_page("status")
        self._arm()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self.timers.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # The session store failed (database down, cache unreachable...): keep the connection, log, retry later.
        logger.warning(
            "django-stomp-push: session check failed on %s; retrying in %gs",
            self.name,
            self.config.revalidate_interval,
            exc_info=task.exception(),
        )
        if not self.ended:
            self.timers.set("session", self.config.revalidate_interval, self._timer_fired)


async def find_swept(session_keys: list[str]) -> set[str]:
    """Which of ``session_keys`` a sweep deleted (the hub asks after each sweep notice)."""
    swept: set[str] = await database_sync_to_async(swept_keys)(session_keys)
    return swept
