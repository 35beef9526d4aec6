"""A hub's channel layer through the machine's relay (``STOMP_PUSH["RELAY"]``).

What the hub sends (its probes) goes to Redis through the pub/sub layer, as without a relay; what it receives (its
own channel and the groups it joins) comes from the relay, which holds the machine's one subscription per channel.
Channel and group names are channels-redis's (``{prefix}{name}`` and ``{prefix}__group__{group}``), so pushes
published by any process (a view, a worker, another server) reach the hubs behind a relay unchanged.

The relay's loss is a channel-layer outage for the hub: joins fail meanwhile with :class:`RelayUnavailable`, the
connection is tried again every ``RECOVERY_INTERVAL``, and once it is back every channel and group is subscribed
again and :attr:`RelayedLayer.on_reset` runs (the hub checks its connections' sessions: session ends broadcast
meanwhile were lost). The relay's own ``RESET`` (it lost Redis) runs it too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from ..outage import Outage
from . import wire

logger = logging.getLogger("django_stomp_push")

#: Seconds between attempts to reach the relay.
RETRY_INTERVAL = 0.2
_READ_SIZE = 256 * 1024


class RelayUnavailable(ConnectionError):
    """The relay is not reachable, or was lost before it confirmed a subscription."""


class RelayedLayer:
    """The channel-layer calls of one hub (one event loop), with receiving through the relay at ``path``."""

    extensions = ["groups"]

    def __init__(self, layer: Any, path: str, prefix: str) -> None:
        #: the pub/sub layer: what the hub sends goes to Redis through it
        self.layer = layer
        self._stomp_push_pubsub = True  # read by layers.groups_expire(): subscriptions do not expire
        self.path = path
        self.prefix = prefix
        #: runs when subscriptions were lost for a while and are back (set by the hub)
        self.on_reset: Callable[[], None] = lambda: None
        self.channels: dict[str, asyncio.Queue[bytes]] = {}
        #: Redis channel of a group -> the local channels in it
        self.groups: dict[str, set[str]] = {}
        #: Redis channels the relay confirmed on the current connection
        self.confirmed: set[str] = set()
        self._acks: dict[str, list[asyncio.Future[None]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._attempted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the channel-layer calls a hub makes ------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        channel = f"{self.prefix}{prefix}{uuid.uuid4().hex}"
        self.channels[channel] = asyncio.Queue()
        try:
            await self._subscribe(channel)
        except BaseException:
            del self.channels[channel]
            raise
        return channel

    async def receive(self, channel: str) -> dict[str, Any]:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue()
            await self._subscribe(channel)
        return self.layer.deserialize(await queue.get())  # type: ignore[no-any-return]

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self.layer.send(channel, message)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self.layer.group_send(group, message)

    async def group_add(self, group: str, channel: str) -> None:
        name = f"{self.prefix}__group__{group}"
        self.groups.setdefault(name, set()).add(channel)
        if name not in self.confirmed:
            await self._subscribe(name)

    async def group_discard(self, group: str, channel: str) -> None:
        name = f"{self.prefix}__group__{group}"
        members = self.groups.get(name)
        if members is None:
            return
        members.discard(channel)
        if not members:
            del self.groups[name]
            self.confirmed.discard(name)
            if self._writer is not None:
                self._writer.write(wire.unsubscribe(name))

    def serialize(self, message: dict[str, Any]) -> bytes:
        return self.layer.serialize(message)  # type: ignore[no-any-return]

    def deserialize(self, data: bytes) -> dict[str, Any]:
        return self.layer.deserialize(data)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Leave the relay (the hub stops): the connection closes as its task ends."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # -- the connection to the relay --------------------------------------------------------------------------

    async def _subscribe(self, name: str) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="django_stomp_push relay client")
        await self._attempted.wait()
        writer = self._writer
        if writer is None:
            raise RelayUnavailable(f"the relay at {self.path} is not reachable")
        future = asyncio.get_running_loop().create_future()
        self._acks.setdefault(name, []).append(future)
        writer.write(wire.subscribe(name))
        # No time limit: the relay confirms once Redis has (a hung Redis holds the join, as on the core layer);
        # the relay's loss fails it.
        await asyncio.shield(future)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        outage: Outage | None = None  # since the relay was lost or first failed to answer
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path)
            except OSError as exc:
                if outage is None:
                    outage = Outage(loop.time())
                    log = True
                else:
                    log = outage.failed(loop.time())
                if log:
                    logger.error(
                        "django-stomp-push hub: the relay at %s is not reachable (%s); pushes and session closes "
                        "are not delivered to this process until it is; retrying every %.1fs",
                        self.path,
                        exc.strerror or type(exc).__name__,
                        RETRY_INTERVAL,
                    )
                self._attempted.set()
                await asyncio.sleep(RETRY_INTERVAL)
                continue
            self._writer = writer
            for name in [*self.channels, *(name for name, members in self.groups.items() if members)]:
                writer.write(wire.subscribe(name))
            self._attempted.set()
            if outage is not None:
                logger.warning("django-stomp-push hub: the relay at %s is back; subscribing again", self.path)
                self.on_reset()
            outage = None
            try:
                await self._read(reader)
            except asyncio.CancelledError:
                writer.close()
                raise
            except (OSError, wire.WireError) as exc:
                logger.error("django-stomp-push hub: lost the relay at %s (%s)", self.path, exc)
            finally:
                self._lost()
            writer.close()
            outage = Outage(loop.time())  # (logged above)
            await asyncio.sleep(RETRY_INTERVAL)

    def _lost(self) -> None:
        self._writer = None
        self.confirmed.clear()
        acks, self._acks = self._acks, {}
        for futures in acks.values():
            for future in futures:
                if not future.done():
                    future.set_exception(RelayUnavailable(f"lost the relay at {self.path}"))
                    future.exception()  # retrieved: its waiter may have timed out

    async def _read(self, reader: asyncio.StreamReader) -> None:
        incoming = wire.Reader(wire.FROM_RELAY)
        while True:
            data = await reader.read(_READ_SIZE)
            if not data:
                raise ConnectionResetError("the relay closed the connection")
            for command, channel, payload in incoming.feed(data):
                if command == b"MSG":
                    assert payload is not None
                    self._deliver(channel.decode("ascii"), payload)
                elif command == b"OK":
                    self._confirmed(channel.decode("ascii"))
                elif command == b"RESET":
                    logger.warning("django-stomp-push hub: the relay lost Redis for a while; checking sessions")
                    self.on_reset()
                else:
                    logger.error("django-stomp-push hub: the relay closes the connection: %s", channel.decode("ascii"))

    def _deliver(self, name: str, payload: bytes) -> None:
        queue = self.channels.get(name)
        if queue is not None:
            queue.put_nowait(payload)
            return
        for channel in self.groups.get(name, ()):
            queue = self.channels.get(channel)
            if queue is not None:
                queue.put_nowait(payload)

    def _confirmed(self, name: str) -> None:
        if name in self.channels or self.groups.get(name):
            self.confirmed.add(name)
        for future in self._acks.pop(name, ()):
            if not future.done():
                future.set_result(None)
