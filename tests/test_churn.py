"""Broadcast under churn: connections leaving in every way while a topic is being flooded break nothing.

The failure this guards against is the one of the Java STOMP-over-WebSocket write-ups: a broadcast loop over
the subscribers of a destination dies (concurrent modification, "session closed" on send) when a subscriber
goes away during it, and every subscriber after it misses the message.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest

from django_stomp_push import apush
from django_stomp_push.hub import get_hub
from tests.stompclient import StompTestClient, application
from tests.test_consumer import sign_in, stomp_settings, subscribe

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CONNECTIONS = 200
MESSAGES = 1000
DESTINATION = "/topic/churn"
#: How each of the 50 leaving connections goes away (10 of each).
WAYS_TO_LEAVE = ("websocket closed", "DISCONNECT frame", "transport broken", "transport stalled", "acks never sent")


class Transport:
    """The server side of one connection's socket, which a test can break (sends raise) or stall (sends hang)."""

    def __init__(self) -> None:
        self.broken = False
        self.flowing = asyncio.Event()
        self.flowing.set()

    def app(self) -> Any:
        inner = application()

        async def app(scope, receive, send):
            async def transport_send(message):
                if self.broken:
                    raise ConnectionResetError("connection reset by peer")
                await self.flowing.wait()
                await send(message)

            await inner(scope, receive, transport_send)

        return app


class Connection:
    def __init__(self, client: StompTestClient, transport: Transport, leaves: str | None, at: int) -> None:
        self.client, self.transport, self.leaves, self.at = client, transport, leaves, at
        self.seqs: list[int] = []

    async def leave(self) -> None:
        """Go away as ``self.leaves`` says (called just before message number ``self.at`` is pushed)."""
        if self.leaves == "websocket closed":
            await self.gone(1000)
            return
        if self.leaves == "DISCONNECT frame":
            await self.client.send("DISCONNECT")
        elif self.leaves == "transport broken":
            self.transport.broken = True
        elif self.leaves == "transport stalled":
            self.transport.flowing.clear()  # a peer gone without a FIN: sends hang until the buffer overflows
            return
        await asyncio.sleep(0.05)
        await self.gone()

    async def gone(self, code: int = 1006) -> None:
        """Tell the application the socket is gone (what the server does sooner or later), and let it end."""
        communicator = self.client.communicator
        if not communicator.future.done():
            await communicator.send_input({"type": "websocket.disconnect", "code": code})
        await communicator.wait(20)  # generous: on timeout the communicator would cancel the application

    def collect(self) -> list[int]:
        """Sequence numbers of every MESSAGE this connection got so far (reads what the server sent)."""
        queue = self.client.communicator.output_queue
        while not queue.empty():
            self._read(queue.get_nowait())
        return self.seqs

    async def wait_for(self, count: int, timeout: float = 10) -> list[int]:
        """:meth:`collect` until ``count`` messages arrived (TimeoutError if ``timeout`` passes without one)."""
        queue = self.client.communicator.output_queue
        while len(self.collect()) < count:
            self._read(await asyncio.wait_for(queue.get(), timeout))
        return self.seqs

    def _read(self, message: dict[str, Any]) -> None:
        data = message.get("bytes") or (message.get("text") or "").encode()
        self.seqs += [int(frame.body) for frame in self.client.parser.feed(data) if frame.command == "MESSAGE"]


async def open_connections(key: str) -> list[Connection]:
    rng = random.Random(20240607)
    ways = [way for way in WAYS_TO_LEAVE for _ in range(10)]
    ways += [None] * (CONNECTIONS - len(ways))
    rng.shuffle(ways)  # leavers sit anywhere in the hub's table, so they close in the middle of a broadcast
    connections = []
    for n, way in enumerate(ways):
        transport = Transport()
        client = StompTestClient(key, app=transport.app())
        assert (await client.connect()).command == "CONNECTED"
        ack = "client" if way == "acks never sent" else "auto"
        await subscribe(client, DESTINATION, f"s{n}", ack=ack)
        connections.append(Connection(client, transport, way, rng.randrange(20, MESSAGES - 300)))
    return connections


async def test_every_remaining_subscriber_gets_every_message_in_order_while_50_of_200_leave(alice, login, caplog):
    key = await sign_in(alice, login)
    settings = {"max_pending_acks": 300, "outbound_buffer_size": 16 * 1024, "heartbeat": (0, 0)}
    with stomp_settings(**settings), caplog.at_level(logging.ERROR):
        connections = await asyncio.wait_for(open_connections(key), 30)
        leaving_at: dict[int, list[Connection]] = {}
        for connection in connections:
            if connection.leaves:
                leaving_at.setdefault(connection.at, []).append(connection)
        hub = await get_hub()
        departures = []
        for seq in range(MESSAGES):
            for connection in leaving_at.get(seq, ()):
                departures.append(asyncio.create_task(connection.leave()))
            await apush(DESTINATION, str(seq))
            if seq % 10 == 9:
                await asyncio.sleep(0)  # let writers, readers and departures run between bursts
        await asyncio.wait_for(asyncio.gather(*departures), 30)
        stalled = [c for c in connections if c.leaves == "transport stalled"]
        assert hub.stats["slow_consumers"] == len(stalled)  # each closed by its own overflow, mid-broadcast
        await asyncio.wait_for(asyncio.gather(*(c.gone() for c in stalled)), 30)

        stayers = [c for c in connections if not c.leaves]
        for connection in stayers:
            assert await connection.wait_for(MESSAGES) == list(range(MESSAGES))
        for connection in connections:
            if connection.leaves:
                seqs = connection.collect()
                assert seqs == list(range(len(seqs))), (connection.leaves, seqs[:5])  # a gap-free prefix
        assert list(hub.topics[DESTINATION]) and len(hub.topics[DESTINATION]) == len(stayers)

        await asyncio.gather(*(connection.gone(1000) for connection in stayers))
    for connection in connections:
        future = connection.client.communicator.future
        assert future.done() and not future.cancelled() and future.exception() is None, connection.leaves
    assert (hub.topics, hub.users, hub.sessions) == ({}, {}, {})
    await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
