"""StompConsumer: the Channels glue between an ASGI WebSocket and the connection core.

A thin consumer: it reads ASGI events and hands them to an :class:`~.core.endpoint.Endpoint`, and it gives the
endpoint an :class:`AsgiWebSocket` to write to. Unlike a textbook Channels consumer it has no per-connection
channel-layer channel (the process's hub delivers pushes and closes) and no ``aclose_old_connections()`` thread
hop per message: every database access of the core goes through ``database_sync_to_async``, which closes stale
connections around its own call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from .core.endpoint import Endpoint, Peer
from .daphne import DaphneTransport

SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")

#: WebSocket messages read in a row before the reader lets the event loop serve other connections.
READS_PER_TURN = 64


class AsgiWebSocket:
    """The core's :class:`~.core.transport.Transport` over an ASGI WebSocket (daphne, uvicorn, ...).

    On daphne it also uses :class:`~.daphne.DaphneTransport`: frames sent synchronously, the bytes daphne
    still holds for the client, and pausing the socket's reading (daphne queues every message without a bound).
    """

    def __init__(self, send: Any) -> None:
        self._send = send
        self._daphne = DaphneTransport.behind(send)

    async def accept(self, subprotocol: str | None) -> None:
        message: dict[str, Any] = {"type": "websocket.accept"}
        if subprotocol:
            message["subprotocol"] = subprotocol
        await self._send(message)
        if self._daphne is not None:
            self._daphne.write_through()
            if self._daphne.fast:
                # The push path's one call per frame: daphne's synchronous send itself, no wrapper in between.
                self.send_now = self._daphne.send_frame  # type: ignore[method-assign, assignment]

    async def send(self, frame: str | bytes) -> None:
        await self._send(_message(frame))

    def send_now(self, frame: str | bytes) -> bool:
        return False  # until the WebSocket is accepted on daphne's fast path (see accept)

    async def close(self, code: int, reason: str) -> None:
        message: dict[str, Any] = {"type": "websocket.close", "code": code}
        if reason:
            message["reason"] = reason
        await self._send(message)

    def backlog(self) -> int:
        return self._daphne.backlog() if self._daphne is not None else 0

    def pause_reading(self) -> bool:
        return self._daphne is not None and self._daphne.pause_reading()

    def resume_reading(self) -> None:
        if self._daphne is not None:
            self._daphne.resume_reading()


def _message(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, str):
        return {"type": "websocket.send", "text": frame}
    return {"type": "websocket.send", "bytes": frame}


class StompConsumer(AsyncConsumer):  # type: ignore[misc]  # channels is untyped
    """A STOMP 1.0/1.1/1.2 endpoint bound to the Django session of the WebSocket's cookie.

    Use it through :func:`django_stomp_push.routing.stomp_application` (or ``StompConsumer.as_asgi()`` inside
    ``AllowedHostsOriginValidator``, ``SessionMiddlewareStack`` and ``AuthMiddlewareStack``).
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.channel_layer = None  # pushes and closes reach this connection through the process's hub
        peer = Peer(scope.get("session"), scope.get("cookies") or {})
        self.endpoint = endpoint = Endpoint(AsgiWebSocket(send), peer)
        try:
            reads = 0
            while True:
                await endpoint.wait_for_room()
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    data = message.get("bytes")
                    endpoint.received(data if data is not None else (message.get("text") or "").encode())
                    reads += 1
                    if not reads % READS_PER_TURN:
                        await asyncio.sleep(0)  # a flood of small messages must not hold the loop
                elif kind == "websocket.connect":
                    offered = scope.get("subprotocols") or ()
                    endpoint.open(next((p for p in SUBPROTOCOLS if p in offered), None))
                elif kind == "websocket.disconnect":
                    break
        except StopConsumer:
            pass
        finally:
            await endpoint.shutdown()


__all__ = ["SUBPROTOCOLS", "AsgiWebSocket", "StompConsumer"]
