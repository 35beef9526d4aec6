"""What one client sends: parsed as it arrives, carried out one frame at a time, bounded.

Reading never waits for the work a frame causes (a channel-layer join, a handler, an authorization query): the
transport's reader calls :meth:`Inbound.received`, which parses at once, so liveness counts bytes when they
arrive; a task of its own carries the events out in frame order, each on its own data, and lets the event loop
serve other connections between two of them. What waits to be carried out is bounded: past ``limit`` bytes the
reader waits (:meth:`wait_for_room`) and the transport stops reading, so TCP slows the client down.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from ..stomp import Event, ServerConnection, StompError


class Inbound:
    """The inbound side of one connection.

    ``carry_out(event)`` performs one event; ``fail(error)`` answers the protocol error that ended the input,
    after the events before it; ``heartbeat()`` is called for input that held nothing but heart-beats.
    """

    def __init__(
        self,
        protocol: ServerConnection,
        limit: int,
        carry_out: Callable[[Event], Awaitable[None]],
        fail: Callable[[StompError], None],
        heartbeat: Callable[[], None],
    ) -> None:
        self.protocol = protocol
        self.limit = limit
        self.carry_out = carry_out
        self.fail = fail
        self.heartbeat = heartbeat
        self.loop = asyncio.get_running_loop()
        #: When input last arrived (loop time), whatever waits to be carried out.
        self.last_received = self.loop.time()
        #: True while the reader waits for room: the client is not silent, the server is not reading.
        self.paused = False
        self.stopped = False
        # Events (or the protocol error that ended the input), each with the bytes of input it releases when done.
        self._queue: deque[tuple[Event | StompError, int]] = deque()
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._task = self.loop.create_task(self._run())

    @property
    def full(self) -> bool:
        return self._bytes > self.limit and not self.stopped

    def received(self, data: bytes) -> None:
        """Parse ``data`` and queue its events; never waits."""
        if self.stopped:
            return
        self.last_received = self.loop.time()
        heartbeats = self.protocol.heartbeats_received
        events, error = self.protocol.receive_events(data)
        if not events and error is None:
            if self.protocol.heartbeats_received > heartbeats:
                self.heartbeat()
            return
        queue = self._queue
        queue.extend((event, 0) for event in events)
        if error is not None:
            queue.append((error, 0))
        queue[-1] = (queue[-1][0], len(data))  # the last item of this input releases its bytes
        self._bytes += len(data)
        self._wake()

    async def wait_for_room(self, pause: Callable[[], bool], resume: Callable[[], None]) -> None:
        """Wait until half of the backlog is carried out; ``pause()``/``resume()`` the transport's reading."""
        self._room = self.loop.create_future()
        self.paused = True
        paused = pause()
        try:
            await self._room
        finally:
            self._room = None
            self.paused = False
            if paused:
                resume()
            self.last_received = self.loop.time()  # the wait was the server's, not the client's silence

    def stop(self) -> None:
        """Carry out nothing more (the connection is closing)."""
        self.stopped = True
        self._wake()

    async def finish(self, grace: float) -> None:
        """Let the event being carried out end on its own for up to ``grace`` seconds (it may be joining a
        channel-layer group, whose registration it accounts for itself), then cancel it."""
        self.stop()
        await asyncio.wait([self._task], timeout=grace)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _make_room(self) -> None:
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    async def _run(self) -> None:
        queue, loop = self._queue, self.loop
        while not self.stopped:
            while queue and not self.stopped:
                item, size = queue.popleft()
                try:
                    if isinstance(item, StompError):
                        self.fail(item)
                    else:
                        await self.carry_out(item)
                finally:
                    self._bytes -= size
                if self._bytes <= self.limit // 2:
                    self._make_room()
                await asyncio.sleep(0)  # other connections' frames, pushes and heart-beats go between two of ours
            if self.stopped:
                break
            self._waiter = loop.create_future()
            await self._waiter
            self._waiter = None
        queue.clear()
        self._bytes = 0
        self._make_room()
