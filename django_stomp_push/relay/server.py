"""The relay: one Redis subscription per machine, shared by the machine's server processes.

On channels-redis's pub/sub layer Redis copies every push into the socket of every subscribed server process, so
the cost of a push in Redis grows with the processes that subscribe to it. Behind a relay the processes of a
machine subscribe through it: Redis has one subscriber per machine, and the relay copies each message to the
processes that asked for its channel, once per process, over a unix socket. Pushes do not pass through the relay:
they are published to Redis as before, by whoever pushes.

The relay keeps, per Redis channel, the set of local connections subscribed to it, and one pub/sub connection per
Redis server of the layer (the shard of a channel is channels-redis's: publishers and the relay agree). A channel is
subscribed in Redis while one local connection wants it. ``OK`` answers a ``SUB`` once Redis confirmed it.

What can go wrong, and what the server processes see:

- Redis restarts or the connection drops: redis-py reconnects and subscribes again; the relay then sends ``RESET``
  to every connection, and their hubs check their connections' sessions as after any channel-layer outage.
- Redis hangs: nothing arrives; the hubs' probes (published to Redis, back through the relay) notice, as without a
  relay.
- The relay stops: the server processes' connections end; each reconnects every ``RECOVERY_INTERVAL``, subscribes
  again, and its hub recovers as after an outage.
- A server process reads too slowly: past :data:`MAX_BEHIND` bytes waiting for it, the relay closes its
  connection (``ERR``) rather than grow; that process recovers as above. The others are not held up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Any

from channels_redis.utils import _consistent_hash

from . import wire
from .shard import Shard

logger = logging.getLogger("django_stomp_push.relay")

#: Bytes the relay holds for one server process that does not read; past it, that connection is closed.
MAX_BEHIND = 64 * 1024 * 1024


class Local(asyncio.Protocol):
    """One server process's connection to the relay."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.reader = wire.Reader(wire.FROM_SERVER)
        self.channels: set[bytes] = set()
        self.transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.relay.locals.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            commands = self.reader.feed(data)
        except wire.WireError as exc:
            self.fail(str(exc))
            return
        for command, channel, _ in commands:
            if command == b"SUB":
                self.relay.subscribe(self, channel)
            else:
                self.relay.unsubscribe(self, channel)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.relay.drop(self)

    def send(self, data: bytes) -> None:
        """Queue ``data``; what is queued in one turn of the event loop leaves in one write."""
        if self._closed:
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        transport = self.transport
        if self._closed or transport is None:
            return
        transport.write(b"".join(self._out))
        self._out.clear()
        if transport.get_write_buffer_size() > self.relay.max_behind:
            self.fail(f"too slow: over {self.relay.max_behind} bytes waiting")

    def fail(self, reason: str) -> None:
        if self._closed or self.transport is None:
            return
        logger.error("relay: closing a server process's connection: %s", reason)
        self._out.clear()
        self.transport.write(wire.error(reason))
        self._closed = True
        self.transport.close()  # connection_lost drops its subscriptions
        self.relay.drop(self)


class Relay:
    """The relay's state: the local connections, and which of them want each Redis channel."""

    def __init__(self, hosts: list[dict[str, Any]], prefix: str, max_behind: int = MAX_BEHIND) -> None:
        self.max_behind = max_behind
        self.shards = [Shard(self, host) for host in hosts]
        self.own_channel = f"{prefix}stomp_push.relay".encode()
        self.subscribers: dict[bytes, set[Local]] = {}
        self.locals: set[Local] = set()
        self.lost = False  # a shard lost Redis since the last RESET
        self.server: asyncio.AbstractServer | None = None

    def shard_of(self, channel: bytes) -> Shard:
        index: int = _consistent_hash(channel.decode("ascii"), len(self.shards))
        return self.shards[index]

    def subscribe(self, local: Local, channel: bytes) -> None:
        if channel in local.channels:
            local.send(wire.subscribed(channel))  # a re-join: already subscribed for it
            return
        local.channels.add(channel)
        members = self.subscribers.get(channel)
        first = members is None
        if members is None:
            members = self.subscribers[channel] = set()
        members.add(local)
        self.shard_of(channel).want(channel, local, first)

    def unsubscribe(self, local: Local, channel: bytes) -> None:
        local.channels.discard(channel)
        members = self.subscribers.get(channel)
        if members is None:
            return
        members.discard(local)
        if not members:
            del self.subscribers[channel]
            self.shard_of(channel).unwant(channel)

    def drop(self, local: Local) -> None:
        self.locals.discard(local)
        for channel in list(local.channels):
            self.unsubscribe(local, channel)

    def deliver(self, channel: bytes, payload: bytes) -> None:
        members = self.subscribers.get(channel)
        if members:
            data = wire.message(channel, payload)
            for local in members:
                local.send(data)

    def reset(self) -> None:
        self.lost = False
        for local in self.locals:
            local.send(wire.RESET)

    async def serve(self, path: str | Path, mode: int = 0o660) -> None:
        """Listen on the unix socket ``path`` (replacing a stale one) until cancelled."""
        path = Path(path)
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise FileExistsError(f"{path} exists and is not a socket")
            if await _answers(path):
                raise FileExistsError(f"another relay is listening on {path}")
            path.unlink()
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: Local(self), str(path))
        os.chmod(path, mode)
        for shard in self.shards:
            shard.start()
        try:
            await asyncio.Future()
        finally:
            self.server.close()
            for local in list(self.locals):
                if local.transport is not None:
                    local.transport.close()
            await asyncio.gather(*(shard.stop() for shard in self.shards))
            path.unlink(missing_ok=True)


async def _answers(path: Path) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True
