"""What a connection needs from the wire it runs on.

A transport carries whole STOMP frames (a WebSocket message each, or a SockJS message) and says how much it still
holds for the client. The core never sees ASGI messages, sockets or HTTP.
"""

from __future__ import annotations

from typing import Protocol


class Transport(Protocol):
    """One client's connection, as the core drives it."""

    async def accept(self, subprotocol: str | None) -> None:
        """Open the connection (a WebSocket ``accept``), naming the chosen subprotocol if any."""

    async def send(self, frame: str | bytes) -> None:
        """Send one frame (text or binary); may wait while the transport is busy."""

    def send_now(self, frame: str | bytes) -> bool:
        """Send one frame synchronously if this transport can; False when it cannot (then :meth:`send` is used)."""

    async def close(self, code: int, reason: str) -> None:
        """Close with a WebSocket close code and a short reason."""

    def backlog(self) -> int:
        """Bytes taken by :meth:`send` or :meth:`send_now` and not yet written to the client (0 if unknown)."""

    def pause_reading(self) -> bool:
        """Stop reading from the client, if the transport can (True); the core then also stops asking for input."""

    def resume_reading(self) -> None:
        """Undo :meth:`pause_reading`."""
