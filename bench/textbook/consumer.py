"""One ``AsyncWebsocketConsumer`` per connection, as the Channels tutorial teaches it.

SUBSCRIBE joins a channel-layer group, a SEND is ``group_send`` to that group, and every subscriber's consumer
renders its own MESSAGE frame and sends it. Heart-beats: one asyncio task per connection.
"""

from __future__ import annotations

import asyncio
import itertools

from channels.generic.websocket import AsyncWebsocketConsumer

from .. import minimal_stomp as stomp

_message_ids = itertools.count()


class TextbookStompConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.subscriptions: dict[str, str] = {}  # subscription id -> destination
        self.heartbeat_task: asyncio.Task[None] | None = None
        offered = self.scope.get("subprotocols") or []
        chosen = next((p for p in ("v12.stomp", "v11.stomp", "v10.stomp") if p in offered), None)
        await self.accept(subprotocol=chosen)

    async def disconnect(self, code: int) -> None:
        if self.heartbeat_task is not None:
            self.heartbeat_task.cancel()
        for destination in set(self.subscriptions.values()):
            await self.channel_layer.group_discard(stomp.group_name(destination), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        data = text_data if text_data is not None else (bytes_data or b"").decode()
        for command, headers, body in stomp.parse(data):
            if command in ("CONNECT", "STOMP"):
                frame, send_every = stomp.connected(headers)
                await self.send(text_data=frame)
                if send_every:
                    self.heartbeat_task = asyncio.create_task(self.send_heartbeats(send_every))
                continue
            if command == "SUBSCRIBE":
                self.subscriptions[headers["id"]] = headers["destination"]
                await self.channel_layer.group_add(stomp.group_name(headers["destination"]), self.channel_name)
            elif command == "UNSUBSCRIBE":
                destination = self.subscriptions.pop(headers["id"], None)
                if destination is not None and destination not in self.subscriptions.values():
                    await self.channel_layer.group_discard(stomp.group_name(destination), self.channel_name)
            elif command == "SEND":
                await self.channel_layer.group_send(
                    stomp.group_name(headers["destination"]),
                    {"type": "stomp.message", "destination": headers["destination"], "body": body},
                )
            receipt = stomp.receipt(headers)
            if receipt is not None:
                await self.send(text_data=receipt)
            if command == "DISCONNECT":
                await self.close()

    async def stomp_message(self, event: dict[str, str]) -> None:
        for subscription, destination in self.subscriptions.items():
            if destination == event["destination"]:
                frame = stomp.message(destination, subscription, str(next(_message_ids)), event["body"])
                await self.send(text_data=frame)

    async def send_heartbeats(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.send(text_data="\n")
