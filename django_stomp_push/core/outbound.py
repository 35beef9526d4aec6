"""What the server writes to one client: a bounded buffer and one writer.

Frames go to the transport at once when nothing waits ahead of them and the transport can take them
synchronously (no task wake-up per push); otherwise they queue for the writer task. Only what waits ahead of a
frame counts against the client: past ``limit`` bytes (what the transport still holds included, sampled every
8th frame) the client is a slow consumer, and so is one whose single send takes longer than ``send_timeout``.
The same rule as Spring's ``sendBufferSizeLimit``: one frame larger than the limit, to a client that has read
everything before it, is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from ..close_reasons import CLOSE_SERVER_ERROR
from .transport import Transport

logger = logging.getLogger("django_stomp_push")


class _Accept:
    __slots__ = ("subprotocol",)

    def __init__(self, subprotocol: str | None) -> None:
        self.subprotocol = subprotocol


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason


class Outbound:
    """The outbound side of one connection. ``on_slow(why)`` is called once when the client stops keeping up."""

    def __init__(
        self,
        transport: Transport,
        limit: int,
        send_timeout: float,
        on_slow: Callable[[str], None],
        name: str,
    ) -> None:
        self.transport = transport
        self.limit = limit
        self.send_timeout = send_timeout
        self.on_slow = on_slow
        self.name = name
        self.loop = asyncio.get_running_loop()
        self.last_sent = self.loop.time()
        #: When the send in progress started (None between sends): the hub's watchdog reads it.
        self.sending_since: float | None = None
        #: True once a close is queued: nothing more is accepted.
        self.closed = False
        self._queue: deque[str | bytes | _Accept | _Close] = deque()
        self._bytes = 0
        self._frames = 0
        self._waiter: asyncio.Future[None] | None = None
        self._writer = self.loop.create_task(self._write_loop())

    def accept(self, subprotocol: str | None) -> None:
        """Open the connection (first thing written)."""
        self._append(_Accept(subprotocol))

    def frame(self, data: str | bytes) -> None:
        """Write one frame, now if possible, else after what is queued; never waits."""
        if self.closed:
            return
        size = len(data)
        self._bytes += size
        queued = self._bytes
        self._frames += 1
        if not self._frames & 7:
            # Every 8th frame: enough to bound memory (8 frames past the limit at worst), cheap on the hot path.
            queued += self.transport.backlog()
        if queued > self.limit and queued > size:
            self.on_slow(f"more than {self.limit} bytes queued")
            return
        if not self._queue and self.sending_since is None:
            try:
                sent = self.transport.send_now(data)
            except Exception:  # never let one broken transport break a broadcast to the others
                logger.warning("django-stomp-push: send failed on %s", self.name, exc_info=True)
                sent = False
            if sent:
                self._bytes -= size
                self.last_sent = self.loop.time()
                return
        self._append(data)

    def idle_for(self, now: float) -> float:
        """Seconds since the last write, or 0 while frames wait (they will be written: that is not idle)."""
        return 0.0 if self._queue else now - self.last_sent

    def stuck(self, now: float) -> bool:
        """Has the send in progress taken longer than ``send_timeout``?"""
        since = self.sending_since
        return since is not None and now - since > self.send_timeout

    def close(self, code: int, reason: str, error: str | None = None) -> None:
        """Write ``error`` (an ERROR frame) after what is queued, whatever the limit, then close."""
        if self.closed:
            return
        self.closed = True
        if error is not None:
            self._append(error)
        self._append(_Close(code, reason))

    def drop(self) -> None:
        """Forget everything queued (a slow consumer gets nothing more but its ERROR and the close)."""
        self._queue.clear()
        self._bytes = 0

    async def stop(self) -> None:
        self._queue.clear()
        self._writer.cancel()
        await asyncio.gather(self._writer, return_exceptions=True)

    def _append(self, item: str | bytes | _Accept | _Close) -> None:
        self._queue.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _write_loop(self) -> None:
        queue, transport, loop = self._queue, self.transport, self.loop
        while True:
            while queue:
                item = queue.popleft()
                self.sending_since = loop.time()
                try:
                    if isinstance(item, _Accept):
                        await transport.accept(item.subprotocol)
                    elif isinstance(item, _Close):
                        await transport.close(item.code, item.reason)
                        queue.clear()
                        return
                    elif not transport.send_now(item):
                        await transport.send(item)
                except Exception:  # the transport is gone, or refused the frame: nothing more can be written
                    logger.debug("django-stomp-push: send failed on %s", self.name, exc_info=True)
                    self.closed = True
                    queue.clear()
                    self._bytes = 0
                    if not isinstance(item, _Close):
                        with contextlib.suppress(Exception):  # a transport that refused a frame can still close
                            await transport.close(CLOSE_SERVER_ERROR, "send failed")
                    return
                finally:
                    self.sending_since = None
                if not isinstance(item, _Accept):
                    self._bytes -= len(item)
                self.last_sent = loop.time()
            self._waiter = loop.create_future()
            await self._waiter
            self._waiter = None
