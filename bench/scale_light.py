"""K subscribers that only read, in one process: Redis's side of a pub/sub push alone, for the ``scale`` benchmark.

On a machine with as many cores as server processes, each hub keeps up with its subscription and Redis writes a
burst of pushes to it in a few large writes. On the 2-core benchmark machine K hub stand-ins (:mod:`bench.scale_hub`)
cannot keep up at large K: the pushes/s then falls, every pipeline carries fewer pushes, and Redis writes to each
socket once per push. This stand-in takes the hubs' CPU out of the measurement: K sockets subscribed to the
benchmark destination's group channel of the pub/sub layer, read with ``bytes.count`` (subscriber 0 also decodes
each message, to know the phases and their latency), so what is left is Redis and the pusher (the package's real
publishing code).

Same protocol as :mod:`bench.scale_hub` (run as ``python -m bench.scale_light`` with ``REDIS_URL`` and
``BENCH_LIGHT_SUBSCRIBERS``), as one stand-in whose ``expected`` and ``received`` count the deliveries of all K.
With ``BENCH_LIGHT_RELAYS`` (socket paths, comma-separated) subscriber ``i`` subscribes through relay
``i // PROCESSES_PER_RELAY`` instead of Redis: Redis then has one subscriber per relay.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any
from urllib.parse import urlparse

import msgpack

from bench.scale_hub import DESTINATION, Phase, emit, read_commands

#: every pub/sub message a subscriber receives contains this, once (RESP: the "message" element of the array)
MARKER = b"\r\n$7\r\nmessage\r\n"


def group_channel() -> str:
    from django_stomp_push.destinations import destination_group

    return f"asgi__group__{destination_group(DESTINATION)}"


class Subscribers:
    """Counts per subscriber; subscriber 0's phases."""

    def __init__(self, count: int) -> None:
        self.counts = [0] * count
        self.phases: dict[int, Phase] = {}
        self.pending: list[int] = []  # phases subscriber 0 has completed, waiting for the others
        self.total0 = 0

    def first(self, payload: bytes) -> None:
        now = time.monotonic()
        message = msgpack.unpackb(payload, raw=False)
        body = json.loads(message["body"])
        phase_id = int(body["p"])
        phase = self.phases.get(phase_id)
        if phase is None:
            phase = self.phases[phase_id] = Phase(int(body["of"]), bool(body.get("l")))
        self.total0 += 1
        if phase.add(int(body["n"]), float(body["t"]), now):
            self.pending.append(phase_id)
        self.settle()

    def settle(self) -> None:
        """Emit ``done`` for the phases every subscriber has received in full."""
        while self.pending and min(self.counts) >= self.total0:
            phase_id = self.pending.pop(0)
            emit(self.summary(phase_id, "done"))

    def summary(self, phase_id: int, event: str) -> dict[str, Any]:
        phase = self.phases.get(phase_id) or Phase(0, False)
        out = phase.summary(phase_id, event, {})
        k = len(self.counts)
        complete = event == "done" or (phase.received == phase.expected and min(self.counts) >= self.total0)
        out["expected"] = phase.expected * k
        out["received"] = phase.expected * k if complete else phase.received * min(1, k)
        return out


async def subscriber(index: int, host: str, port: int, channel: str, subs: Subscribers, ready: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    name = channel.encode()
    writer.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(name), name))
    await writer.drain()
    confirmation = await reader.readuntil(b":1\r\n")  # *3 $9 subscribe $n <channel> :1
    assert b"subscribe" in confirmation
    ready.set()
    if index == 0:
        while True:  # parse: *3 $7 message $n <channel> $m <payload>
            await reader.readuntil(MARKER)
            await reader.readline()  # $n
            await reader.readline()  # <channel>
            size = int((await reader.readline())[1:])
            payload = await reader.readexactly(size + 2)
            subs.counts[0] += 1
            subs.first(payload[:-2])
    carry = b""
    while True:
        chunk = await reader.read(1 << 16)
        if not chunk:
            return
        data = carry + chunk
        subs.counts[index] += data.count(MARKER)
        carry = data[-(len(MARKER) - 1) :]
        subs.settle()


async def relayed_subscriber(index: int, path: str, channel: str, subs: Subscribers, ready: asyncio.Event) -> None:
    """A subscriber of ``channel`` through the relay at ``path`` (subscriber 0 decodes each message)."""
    from django_stomp_push.relay import wire

    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(wire.subscribe(channel))
    assert (await reader.readline()).startswith(b"OK ")
    ready.set()
    incoming = wire.Reader(wire.FROM_RELAY)
    marker = b"MSG " + channel.encode() + b" "
    carry = b""
    while True:
        chunk = await reader.read(1 << 16)
        if not chunk:
            return
        if index == 0:
            for command, _, payload in incoming.feed(chunk):
                if command == b"MSG" and payload is not None:
                    subs.counts[0] += 1
                    subs.first(payload)
            continue
        data = carry + chunk
        subs.counts[index] += data.count(marker)
        carry = data[-(len(marker) - 1) :]
        subs.settle()


async def main() -> None:
    from bench.scale_fleet import PROCESSES_PER_RELAY

    url = urlparse(os.environ["REDIS_URL"])
    count = int(os.environ["BENCH_LIGHT_SUBSCRIBERS"])
    relays = [path for path in os.environ.get("BENCH_LIGHT_RELAYS", "").split(",") if path]
    channel = group_channel()
    subs = Subscribers(count)
    events = [asyncio.Event() for _ in range(count)]
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    tasks = [
        asyncio.create_task(
            relayed_subscriber(i, relays[i // PROCESSES_PER_RELAY], channel, subs, events[i])
            if relays
            else subscriber(i, host, port, channel, subs, events[i])
        )
        for i in range(count)
    ]
    await asyncio.gather(*(event.wait() for event in events))
    commands: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    threading.Thread(target=read_commands, args=(asyncio.get_running_loop(), commands), daemon=True).start()
    emit({"event": "ready"})
    while (command := await commands.get()) is not None:
        if command.get("cmd") == "report":
            phase_id = int(command["phase"])
            summary = subs.summary(phase_id, "report")
            if command.get("brief"):
                emit({"event": "progress", "phase": phase_id, "received": sum(subs.counts)})
            else:
                emit({**summary, "bad_bodies": 0})
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    import django

    django.setup()
    asyncio.run(main())
