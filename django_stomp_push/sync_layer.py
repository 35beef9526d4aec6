"""Channel-layer sends from synchronous code (views, signal receivers, tasks, the shell), bounded by ``LAYER_TIMEOUT``.

Every synchronous send of a process runs on one event loop in a daemon thread, started on first use and again in
a forked child (gunicorn forks its workers after loading the app; the parent's loop thread does not exist there).
``async_to_sync`` would run a fresh loop per call instead, and channels-redis would open and close a Redis
connection for each call; on this loop it keeps its connections. Many threads may send at once.

- :func:`send` waits at most ``LAYER_TIMEOUT``, then cancels the send and raises ``TimeoutError``.
- :func:`send_persistently` (session ends) waits at most ``LAYER_TIMEOUT`` too, but does not cancel: the send goes
  on in the background, retried, until it succeeds or ``REVALIDATE_INTERVAL`` has passed (by then every bound
  connection has re-read the session store anyway), and logs one line if it needed more than the first attempt.
  At most :data:`MAX_BACKGROUND_SENDS` run at once per process; past that a new one is dropped with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from .conf import Config, get_config
from .layers import get_layer, group_send, send_in_order, sync_publisher

logger = logging.getLogger("django_stomp_push")

#: Session ends still being retried in the background, per process; a new one past this is dropped (the
#: connections' revalidation is the backstop). Each may hold a channel-layer connection while the layer hangs.
MAX_BACKGROUND_SENDS = 100
#: Seconds between the attempts of a background send; the last pause repeats.
RETRY_PAUSES = (0.5, 1.0, 2.0, 5.0)

GroupMessage = tuple[str, dict[str, Any]]  # (group, message)


class _LayerLoop:
    """This process's event loop for synchronous senders, running in a daemon thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.background = threading.BoundedSemaphore(MAX_BACKGROUND_SENDS)
        self.dropping = False  # warned about a drop since the last background send ended
        self.thread = threading.Thread(target=self._run, name="django-stomp-push channel layer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def release_background(self) -> None:
        self.dropping = False
        self.background.release()


_current: _LayerLoop | None = None
_lock = threading.Lock()


def _layer_loop() -> _LayerLoop:
    global _current
    current = _current
    if current is not None and current.pid == os.getpid():
        return current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = _LayerLoop()
        return _current


def _new_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


def _prepare(caller: str, alias: str | None) -> None:
    """Refuse a call from an event loop's thread (waiting would block that loop) and build the layer; building
    the layer (and importing channels-redis) here keeps it out of ``LAYER_TIMEOUT``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            f"{caller}() cannot be called from a thread that runs an event loop (it would block the loop while it "
            f"waits for the channel layer): use 'await a{caller}(...)' there"
        )
    get_layer(alias)


def send(group: str, message: dict[str, Any], *, caller: str, alias: str | None = None) -> None:
    """``group_send(group, message)`` from synchronous code; waits at most ``LAYER_TIMEOUT``.

    Past it the send is cancelled and ``TimeoutError`` raised: a send the layer had already taken in part
    may still arrive, otherwise it is dropped. An error of the layer (e.g. ``ConnectionError``) is raised as is.
    """
    _prepare(caller, alias)
    config = get_config()
    direct = sync_publisher(alias, config.layer_timeout)
    if direct is not None:  # the pub/sub layer: one PUBLISH from this thread, no loop involved
        try:
            direct.group_send(group, message)
        except TimeoutError:
            raise _timed_out(caller, alias, config) from None
        return
    bridge = _layer_loop()
    done: Future[None] = Future()
    started: list[asyncio.Future[None]] = []

    def start() -> None:
        # On the loop's thread: start the send without a coroutine and task of its own (on the pub/sub layer a
        # send is a queued future, see pubsub.py), and pass its outcome to the waiting thread.
        try:
            sent = send_in_order(group, message, alias)
        except BaseException as exc:
            done.set_exception(exc)
            return
        if sent is None:
            done.set_result(None)
            return
        future = asyncio.ensure_future(sent)
        started.append(future)
        future.add_done_callback(lambda f: _copy_outcome(f, done))

    bridge.loop.call_soon_threadsafe(start)
    try:
        done.result(config.layer_timeout)
    except FutureTimeout:
        bridge.loop.call_soon_threadsafe(lambda: [f.cancel() for f in started])
        raise _timed_out(caller, alias, config) from None


def _timed_out(caller: str, alias: str | None, config: Config) -> TimeoutError:
    return TimeoutError(
        f"{caller}(): the channel layer {alias or config.channel_layer!r} did not answer within "
        f"LAYER_TIMEOUT ({config.layer_timeout:g} s); the send was cancelled"
    )


def send_persistently(messages: list[GroupMessage], *, caller: str, what: str, alias: str | None = None) -> bool:
    """Send ``messages`` in order from synchronous code, retried in the background until all are sent.

    Returns True once all were sent within ``LAYER_TIMEOUT``; False when the first attempt failed or did not
    finish in time (the sending goes on in the background) or when too many are in the background already (dropped).
    ``what`` names them in the log ("a session end (logged out)").
    """
    _prepare(caller, alias)
    bridge = _layer_loop()
    if not bridge.background.acquire(blocking=False):
        if not bridge.dropping:
            bridge.dropping = True
            logger.warning(
                "django-stomp-push: %d broadcasts are waiting for the channel layer already; %s and later ones are "
                "dropped until one ends (bound connections close at their next revalidation)",
                MAX_BACKGROUND_SENDS,
                what,
            )
        return False
    config = get_config()
    first: Future[bool] = Future()
    retry_for = max(config.revalidate_interval, config.layer_timeout)
    try:
        bridge.submit(_keep_trying(list(messages), alias, first, config.layer_timeout, retry_for, what, bridge))
    except BaseException:
        bridge.release_background()
        raise
    return bool(wait([first], config.layer_timeout).done) and first.result()


async def _keep_trying(
    messages: list[GroupMessage],
    alias: str | None,
    first: Future[bool],
    timeout: float,
    retry_for: float,
    what: str,
    bridge: _LayerLoop,
) -> None:
    """Send ``messages`` in order, resuming after a failure at the one that failed, until ``retry_for`` seconds
    have passed; settle ``first`` with the outcome of the first attempt; log once if that was not a success."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + retry_for
    attempts = 0
    try:
        while True:
            attempts += 1
            try:
                while messages:
                    await asyncio.wait_for(group_send(*messages[0], alias), max(deadline - loop.time(), 0.001))
                    messages.pop(0)
            except Exception as exc:
                _settle(first, False)
                pause = RETRY_PAUSES[min(attempts, len(RETRY_PAUSES)) - 1]
                if loop.time() + pause < deadline:
                    await asyncio.sleep(pause)
                    continue
                logger.warning(
                    "django-stomp-push: could not broadcast %s within %g s (attempts: %d, last error: %s); bound "
                    "connections close at their next revalidation",
                    what,
                    retry_for,
                    attempts,
                    f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                )
                return
            _settle(first, True)
            took = loop.time() - started
            if attempts > 1 or took > timeout:
                logger.info("django-stomp-push: broadcast %s after %.1f s, at attempt %d", what, took, attempts)
            return
    finally:
        bridge.release_background()


def _copy_outcome(source: asyncio.Future[None], target: Future[None]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.set_exception(TimeoutError("the send was cancelled"))
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(None)


def _settle(first: Future[bool], outcome: bool) -> None:
    if not first.done():
        first.set_result(outcome)
