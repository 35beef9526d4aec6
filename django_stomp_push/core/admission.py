"""Who may connect to this process, and how it leaves: admission control in a storm, and the drain of a deploy.

- **Admission.** A connection counts as *pending* from its WebSocket's opening until its CONNECT is answered. When
  more than ``ADMISSION_LIMIT`` are pending, the process cannot serve a new one in time: it is refused at once and
  cheaply (no session read, no group join) with ERROR ``server busy``, ``reconnect: later``, a jittered
  ``retry-after`` and close 1013 (Try Again Later), never left to a handshake timeout or a TCP reset. The
  ``retry-after`` is drawn from 1 s to the time the connections pending now need to be answered at the rate the
  process answered CONNECTs in its best recent second of refusing some (its capacity; at least 3 s, at most
  :data:`BUSY_RETRY_MAX` s): the refused clients come back spread over the time the process needs, instead of
  all being refused again and again while the process spends its time refusing.
- **Drain.** :func:`drain` (and, with ``DRAIN_ON_SIGNALS``, SIGTERM or SIGINT) makes the process refuse new
  connections and close every open one with ERROR ``server restarting``, ``reconnect: later`` and a
  ``retry-after`` drawn over ``DRAIN_WINDOW``, then close 1012 (Service Restart): the clients come back to the
  other servers spread over the window instead of all at once. One opened meanwhile gets a ``retry-after`` drawn
  over what is left of the window (1 s at least), so no client is sent past it. After a signal, the server's own
  shutdown follows once the closes are written. In a gunicorn worker SIGQUIT drains too: gunicorn's master sends it
  for a quick shutdown (on its own SIGINT or SIGQUIT), and uvicorn's worker would otherwise ignore it until the
  master kills it.
- **Listen backlog.** The first connection of a process also has :mod:`..backlog` check, once, that the listening
  socket's backlog can hold a storm (one log line, a warning naming the fix when it cannot).
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from .. import backlog
from ..close_reasons import CLOSE_SERVICE_RESTART, CLOSE_TRY_AGAIN_LATER, RECONNECT_LATER
from ..conf import get_config
from .collector import STORM_PENDING, collector

logger = logging.getLogger("django_stomp_push")

SERVER_BUSY = "server busy"
SERVER_RESTARTING = "server restarting"
#: Seconds a drain started by a signal waits for the closes to be written before the server's own shutdown.
SIGNAL_GRACE = 1.0
#: Bounds of a ``server busy`` retry-after, in seconds (see the module docstring): drawn from BUSY_RETRY_MIN to the
#: time the pending connections need, but to BUSY_RETRY_SPREAD at least (before any rate is known, too) and to
#: BUSY_RETRY_MAX at most.
BUSY_RETRY_MIN = 1.0
BUSY_RETRY_SPREAD = 3.0
BUSY_RETRY_MAX = 30.0
#: The shortest window of a ``server restarting`` retry-after given to a connection opened while draining.
DRAIN_RETRY_MIN = 1.0


class Closable(Protocol):
    def close(
        self,
        code: int,
        message: str | None = None,
        detail: str = "",
        receipt_id: str | None = None,
        headers: dict[str, str] | None = None,
        reconnect: str | None = None,
    ) -> None: ...


class Gate:
    """The connections of one event loop: pending, open, and whether the process is draining."""

    def __init__(self) -> None:
        self.pending: set[Closable] = set()
        self.open: weakref.WeakSet[Any] = weakref.WeakSet()
        self.draining = False
        self._drain_ends = 0.0  # (time.monotonic()) the end of the drain's window
        #: Connections refused as "server busy", for operators and tests.
        self.refused = 0
        #: CONNECTs answered per second while the process was refusing some (its capacity: the best such second,
        #: fading by a tenth with each later one; None before the first).
        self.answer_rate: float | None = None
        self._answered = 0
        self._since = 0.0
        self._refusing = False  # in the current second
        self._storm = False  # more than STORM_PENDING were pending, and some still are (see .collector)

    def admit(self, connection: Closable) -> bool:
        """Count a new connection in, or refuse it (ERROR and close) and return False."""
        config = get_config()
        if self.draining:
            # What is left of the window (1 s at least): a client that comes back while the process still drains
            # is not sent past the window the others were spread over.
            left = max(DRAIN_RETRY_MIN, self._drain_ends - time.monotonic())
            refuse(connection, CLOSE_SERVICE_RESTART, SERVER_RESTARTING, left)
            return False
        if len(self.pending) >= config.admission_limit:
            self.refused += 1
            self._refusing = True
            rate = self.answer_rate
            needed = len(self.pending) / rate if rate else 0.0
            spread = min(BUSY_RETRY_MAX, max(BUSY_RETRY_SPREAD, needed)) - BUSY_RETRY_MIN
            refuse(connection, CLOSE_TRY_AGAIN_LATER, SERVER_BUSY, spread, floor=BUSY_RETRY_MIN)
            return False
        self.pending.add(connection)
        self.open.add(connection)
        if len(self.pending) > STORM_PENDING and not self._storm:
            self._weather()
        return True

    def connected(self, connection: Closable) -> None:
        """Its CONNECT was answered (or it closed): it no longer waits."""
        if connection not in self.pending:
            return
        self.pending.remove(connection)
        if self._storm and not self.pending:
            self._weather()
        self._answered += 1
        now = time.monotonic()
        elapsed = now - self._since
        if elapsed < 1.0:
            return
        if self._refusing and elapsed < 2.0:  # a busy second, not one that spans a quiet time
            rate = self._answered / elapsed
            self.answer_rate = rate if self.answer_rate is None else max(rate, self.answer_rate * 0.9)
        self._answered, self._since, self._refusing = 0, now, False

    def _weather(self) -> None:
        """Tell the collector that this loop enters a storm (more than STORM_PENDING waiting) or leaves it (none)."""
        if self._storm and not self.pending:
            self._storm = False
            collector.left()
        elif not self._storm and get_config().defer_gc_in_storms:
            self._storm = True
            collector.entered()

    def drain(self, window: float) -> int:
        """Refuse new connections; close every open one with ``server restarting``. Returns how many."""
        self.draining = True
        self._drain_ends = time.monotonic() + window
        closing = list(self.open)
        for connection in closing:
            refuse(connection, CLOSE_SERVICE_RESTART, SERVER_RESTARTING, window)
        return len(closing)


def refuse(connection: Closable, code: int, message: str, window: float, floor: float = 0.0) -> None:
    """ERROR ``message`` with ``reconnect: later`` and a ``retry-after`` (ms) drawn from [floor, floor + window]
    seconds, then close ``code``."""
    retry_after = int((floor + random.uniform(0.0, window)) * 1000)
    detail = (
        "this server is restarting: reconnect after retry-after milliseconds"
        if code == CLOSE_SERVICE_RESTART
        else "this server has more connections waiting than it can serve in time: reconnect after retry-after ms"
    )
    connection.close(code, message, detail, headers={"retry-after": str(retry_after)}, reconnect=RECONNECT_LATER)


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Gate] = weakref.WeakKeyDictionary()
_signals_installed = False


def gate() -> Gate:
    """The gate of the running event loop (installing the drain's signal handlers with the first one)."""
    loop = asyncio.get_running_loop()
    found = _gates.get(loop)
    if found is None:
        found = _gates[loop] = Gate()
        if get_config().drain_on_signals:
            install_signal_handlers(loop)
        backlog.check_once()
    return found


async def adrain(window: float | None = None) -> int:
    """Drain the connections of the running event loop (see the module docstring); returns how many were closed."""
    window = get_config().drain_window if window is None else window
    count = gate().drain(window)
    logger.warning("django-stomp-push: draining: %d connection(s) told to reconnect within %gs", count, window)
    return count


def drain(window: float | None = None) -> int:
    """Drain every event loop of this process that serves connections, from any thread; returns how many were
    closed (the closes are written by each loop right after)."""
    window = get_config().drain_window if window is None else window
    count = 0
    for loop, found in list(_gates.items()):
        if loop.is_closed():
            continue
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            count += found.drain(window)
        else:
            count += asyncio.run_coroutine_threadsafe(_drain_gate(found, window), loop).result(10)
    logger.warning("django-stomp-push: draining: %d connection(s) told to reconnect within %gs", count, window)
    return count


async def _drain_gate(found: Gate, window: float) -> int:
    return found.drain(window)


def install_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    """On SIGTERM and SIGINT (and SIGQUIT in a gunicorn worker): drain, let the closes be written, then hand the
    signal to the handler that was there (the server's own shutdown: daphne's reactor, uvicorn's or gunicorn's
    worker). Once per process."""
    global _signals_installed
    if _signals_installed:
        return
    _signals_installed = True
    state = {"draining": False}  # one drain per process, whichever signal comes first
    try:
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig, handler in previous.items():
            signal.signal(sig, _on_signal(loop, handler, state))
        if in_gunicorn_worker():
            # uvicorn's worker takes SIGQUIT (through the loop) only to set a flag that nothing reads: after the
            # drain, the worker stops as on SIGTERM, through the server's SIGTERM handler.
            signal.signal(signal.SIGQUIT, _on_signal(loop, previous[signal.SIGTERM], state, signal.SIGTERM))
    except (ValueError, OSError):  # not the main thread: the server keeps its own handling
        logger.info("django-stomp-push: cannot drain on signals here (not the main thread)")


def in_gunicorn_worker() -> bool:
    """This process is a gunicorn worker (its master imported the arbiter before forking it)."""
    return "gunicorn.arbiter" in sys.modules


def _on_signal(
    loop: asyncio.AbstractEventLoop, previous: Any, state: dict[str, bool], forward: int | None = None
) -> Callable[[int, Any], None]:
    """A signal handler: the first signal drains and then calls ``previous`` (with ``forward`` instead of the signal
    received, when given); a later one calls ``previous`` at once."""

    def handle(signum: int, frame: Any) -> None:
        passed = signum if forward is None else forward
        if state["draining"]:  # a second signal: do what the server would have done at once
            _call(previous, passed, frame)
            return
        state["draining"] = True

        async def drain_then_stop() -> None:
            try:
                if (await adrain()) > 0:
                    await asyncio.sleep(SIGNAL_GRACE)  # the writers send the ERROR frames and the closes
            finally:
                _call(previous, passed, frame)

        loop.call_soon_threadsafe(lambda: loop.create_task(drain_then_stop()))

    return handle


def _call(handler: Any, signum: int, frame: Any) -> None:
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
