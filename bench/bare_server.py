"""Baseline (b), the ceiling: a bare asyncio ``websockets`` server broadcasting minimal STOMP in-process.

No Django, no channel layer: a SEND renders the MESSAGE frame once per subscription id and hands it to
``websockets.broadcast``. Run: ``python -m bench.bare_server --port 8001``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast, serve

from . import minimal_stomp as stomp

#: destination -> {connection: subscription id}
subscribers: defaultdict[str, dict[ServerConnection, str]] = defaultdict(dict)
message_ids = itertools.count()


def publish(destination: str, body: str) -> None:
    by_subscription: defaultdict[str, list[ServerConnection]] = defaultdict(list)
    for connection, subscription in subscribers.get(destination, {}).items():
        by_subscription[subscription].append(connection)
    message_id = str(next(message_ids))
    for subscription, connections in by_subscription.items():
        broadcast(connections, stomp.message(destination, subscription, message_id, body))


async def send_heartbeats(connection: ServerConnection, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await connection.send("\n")


async def handle(connection: ServerConnection) -> None:
    subscriptions: dict[str, str] = {}  # subscription id -> destination
    heartbeats: asyncio.Task[None] | None = None
    try:
        async for data in connection:
            text = data if isinstance(data, str) else data.decode()
            for command, headers, body in stomp.parse(text):
                if command in ("CONNECT", "STOMP"):
                    frame, send_every = stomp.connected(headers)
                    await connection.send(frame)
                    if send_every:
                        heartbeats = asyncio.create_task(send_heartbeats(connection, send_every))
                    continue
                if command == "SUBSCRIBE":
                    subscriptions[headers["id"]] = headers["destination"]
                    subscribers[headers["destination"]][connection] = headers["id"]
                elif command == "UNSUBSCRIBE":
                    destination = subscriptions.pop(headers["id"], None)
                    if destination is not None:
                        subscribers[destination].pop(connection, None)
                elif command == "SEND":
                    publish(headers["destination"], body)
                receipt = stomp.receipt(headers)
                if receipt is not None:
                    await connection.send(receipt)
                if command == "DISCONNECT":
                    return
    finally:
        if heartbeats is not None:
            heartbeats.cancel()
        for destination in subscriptions.values():
            subscribers[destination].pop(connection, None)


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    # asyncio listens with a backlog of 100 by default; a ceiling for connect storms needs RabbitMQ's 1024
    async with serve(handle, host, port, compression=None, max_size=1 << 20, backlog=1024):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
