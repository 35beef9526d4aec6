"""Named one-shot timers of one connection, all cancelled at once when it closes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Timers:
    """``set(name, delay, callback)`` replaces the timer of that name; :meth:`cancel_all` ends them all."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._stopped = False

    def set(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        if self._stopped:
            return
        self.cancel(name)
        self._handles[name] = self.loop.call_later(delay, callback)

    def cancel(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        """Cancel every timer; none can be set afterwards (the connection is closing)."""
        self._stopped = True
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
