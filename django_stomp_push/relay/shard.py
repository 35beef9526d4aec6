"""The relay's side of Redis: one pub/sub connection per Redis server of the layer, and its recovery.

A channel is subscribed in Redis while a local connection of the relay wants it; ``OK`` goes to each local that
asked once Redis confirmed the SUBSCRIBE that covers it. After a loss the connection is made again with every
wanted channel, and the relay sends ``RESET`` to every local (see :mod:`.server`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from channels_redis.utils import create_pool
from redis import asyncio as aioredis

from . import wire

if TYPE_CHECKING:
    from .server import Local, Relay

logger = logging.getLogger("django_stomp_push.relay")

#: Seconds between attempts to reach a Redis server that failed.
RETRY_INTERVAL = 0.2
#: Seconds a wait for Redis's next message lasts at most (then the loop looks at its state again).
READ_TIMEOUT = 1.0
#: Channels per SUBSCRIBE command when subscribing again after a loss.
RESUBSCRIBE_CHUNK = 1000


class Shard:
    """The relay's pub/sub connection to one Redis server of the layer."""

    def __init__(self, relay: Relay, host: dict[str, Any]) -> None:
        self.relay = relay
        self.host = host
        self.redis: Any = None
        self.pubsub: Any = None
        self.connected = False
        #: per channel, one entry per SUBSCRIBE (the locals waiting for its confirmation) or UNSUBSCRIBE (None)
        #: sent and not yet confirmed
        self.inflight: dict[bytes, deque[list[Local] | None]] = {}
        #: while not connected: the locals waiting for a channel's confirmation
        self.waiting: dict[bytes, list[Local]] = {}
        self._commands: deque[tuple[str, bytes]] = deque()
        self._pump: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="django_stomp_push relay shard")

    async def stop(self) -> None:
        for task in (self._task, self._pump):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._close()

    def want(self, channel: bytes, local: Local, first: bool) -> None:
        """``local`` wants ``channel`` (``first``: nobody wanted it); ``OK`` to it once Redis confirmed."""
        if not self.connected:
            self.waiting.setdefault(channel, []).append(local)  # the connection subscribes every wanted channel
            return
        pending = self.inflight.get(channel)
        if first:
            self.inflight.setdefault(channel, deque()).append([local])
            self._command("subscribe", channel)
        elif pending and pending[-1] is not None:
            pending[-1].append(local)  # the SUBSCRIBE in flight confirms it for this one too
        else:
            local.send(wire.subscribed(channel))

    def unwant(self, channel: bytes) -> None:
        """Nobody wants ``channel`` any more."""
        if self.connected:
            self.inflight.setdefault(channel, deque()).append(None)
            self._command("unsubscribe", channel)

    def _command(self, name: str, channel: bytes) -> None:
        """Commands leave in order, one task sending them, consecutive ones of a kind together."""
        self._commands.append((name, channel))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._commands and self.connected:
            name = self._commands[0][0]
            channels: list[bytes] = []
            while self._commands and self._commands[0][0] == name and len(channels) < RESUBSCRIBE_CHUNK:
                channels.append(self._commands.popleft()[1])
            try:
                await getattr(self.pubsub, name)(*channels)
            except Exception as exc:
                logger.warning("relay: %s failed (%s); subscribing again once Redis answers", name, exc)
                await self._close()
        self._commands.clear()  # not connected: the next connection subscribes what is wanted then

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        while True:
            try:
                if self.pubsub is None:
                    await self._connect()
                    if failing_since is not None:
                        logger.warning("relay: Redis is back after %.1fs", loop.time() - failing_since)
                        failing_since = None
                message = await self.pubsub.get_message(timeout=READ_TIMEOUT)
                if message is not None:
                    self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failing_since is None:
                    failing_since = loop.time()
                    logger.error(
                        "relay: Redis at %s failed (%s: %s); retrying", _where(self.host), type(exc).__name__, exc
                    )
                await self._close()
                await asyncio.sleep(RETRY_INTERVAL)

    async def _connect(self) -> None:
        """A new pub/sub connection, subscribed to every wanted channel of this shard (after a loss: RESET)."""
        if self.redis is None:
            self.redis = aioredis.Redis(connection_pool=create_pool(self.host))
        pubsub = self.redis.pubsub()
        self.pubsub = pubsub
        try:
            # The relay's own channel: a pub/sub connection must have a subscription to be read from.
            await pubsub.subscribe(self.relay.own_channel)
            sent: set[bytes] = set()
            while True:  # until what is subscribed is what is wanted (locals come and go meanwhile)
                wanted = {channel for channel in self.relay.subscribers if self.relay.shard_of(channel) is self}
                add, remove = list(wanted - sent), list(sent - wanted)
                if not add and not remove:
                    break
                for start in range(0, len(add), RESUBSCRIBE_CHUNK):
                    await pubsub.subscribe(*add[start : start + RESUBSCRIBE_CHUNK])
                if remove:
                    await pubsub.unsubscribe(*remove)
                sent = wanted
        except BaseException:
            self.pubsub = None
            raise
        # Nothing of this connection has been read yet: each waiting channel's confirmation is still to come.
        self.inflight = {
            channel: deque([locals]) for channel, locals in self.waiting.items() if channel in self.relay.subscribers
        }
        self.waiting = {}
        self.connected = True
        # redis-py reconnects a dropped pub/sub connection by itself and subscribes again: messages published
        # meanwhile were lost, which the hubs must hear of.
        pubsub.connection.register_connect_callback(self._reconnected)
        if self.relay.lost:
            self.relay.reset()

    def _reconnected(self, connection: Any) -> None:
        logger.warning("relay: Redis at %s reconnected; messages may have been lost meanwhile", _where(self.host))
        self.relay.reset()

    async def _close(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        if self.connected:
            self.relay.lost = True
        self.connected = False
        for channel, pending in self.inflight.items():
            for group in pending:
                if group:
                    self.waiting.setdefault(channel, []).extend(group)
        self.inflight = {}
        if pubsub is not None:
            if pubsub.connection is not None:  # the pool may hand this connection to the next pub/sub
                pubsub.connection.deregister_connect_callback(self._reconnected)
            try:
                await pubsub.aclose()
            except Exception:
                logger.debug("relay: closing a failed pub/sub connection failed too", exc_info=True)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if kind == "message":
            self.relay.deliver(channel, message["data"])
        elif kind in ("subscribe", "unsubscribe"):
            pending = self.inflight.get(channel)
            if not pending:
                return
            group = pending.popleft()
            if not pending:
                del self.inflight[channel]
            for local in group or ():
                if channel in local.channels:
                    local.send(wire.subscribed(channel))


def _where(host: dict[str, Any]) -> str:
    address = host.get("address")
    if isinstance(address, str):
        return address.rpartition("@")[2]  # never the password
    return "(sentinel)" if "sentinels" in host else "?"
