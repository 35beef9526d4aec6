"""A small STOMP client over channels.testing.WebsocketCommunicator, for consumer tests."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from django_stomp_push.routing import websocket_urlpatterns, wrap
from django_stomp_push.stomp import Frame, FrameParser, Limits, encode


def application() -> Any:
    return wrap(URLRouter(websocket_urlpatterns()))


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class StompTestClient:
    """Speaks STOMP to the consumer under test; frames in, frames out."""

    def __init__(
        self,
        session_key: str | None = None,
        *,
        origin: str = "http://testserver",
        subprotocols: list[str] | None = None,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        app: Any = None,
    ) -> None:
        headers = [(b"origin", origin.encode())] if origin else []
        if session_key:
            headers.append((b"cookie", f"sessionid={session_key}".encode()))
        headers += extra_headers or []
        self.communicator = WebsocketCommunicator(
            app or application(), "/ws/stomp/", headers=headers, subprotocols=subprotocols or ["v12.stomp"]
        )
        self.parser = FrameParser(Limits(max_frame_size=16 * 1024 * 1024, max_header_count=1000))
        self.frames: list[Frame] = []
        self.heartbeats = 0
        self.subprotocol: str | None = None
        self.close_code: int | None = None

    async def open(self) -> bool:
        connected, self.subprotocol = await self.communicator.connect(timeout=5)
        return connected

    async def connect(self, version: str = "1.2", **headers: str) -> Frame:
        await self.open()
        hdrs = {"accept-version": version, "host": "testserver", **{k.replace("_", "-"): v for k, v in headers.items()}}
        await self.send("CONNECT", hdrs)
        return await self.receive()

    async def send(self, command: str, headers: dict[str, str] | None = None, body: bytes | str = b"") -> None:
        if isinstance(body, str):
            body = body.encode()
        await self.send_raw(encode(Frame(command, dict(headers or {}), body), "1.2"))

    async def send_raw(self, data: bytes | str, binary: bool = False) -> None:
        if binary:
            await self.communicator.send_to(bytes_data=data if isinstance(data, bytes) else data.encode())
        else:
            await self.communicator.send_to(text_data=data if isinstance(data, str) else data.decode())

    async def receive(self, timeout: float = 2.0) -> Frame:
        """The next frame (heart-beats are counted and skipped); raises Closed when the server closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.frames:
            message = await self.communicator.receive_output(timeout=max(0.01, deadline - loop.time()))
            if message["type"] == "websocket.close":
                self.close_code = message.get("code")
                raise Closed(self.close_code)
            data = message.get("bytes") or (message.get("text") or "").encode()
            before = self.parser.heartbeats
            self.frames.extend(self.parser.feed(data))
            self.heartbeats += self.parser.heartbeats - before
        return self.frames.pop(0)

    async def receive_error(self, timeout: float = 2.0) -> tuple[Frame, int | None]:
        """Expect an ERROR frame followed by the close; return both."""
        frame = await self.receive(timeout)
        assert frame.command == "ERROR", frame
        try:
            extra = await self.receive(timeout)
        except Closed as closed:
            return frame, closed.code
        raise AssertionError(f"expected a close after ERROR, got {extra}")

    async def nothing_received(self, timeout: float = 0.2) -> bool:
        if self.frames:
            return False
        return await self.communicator.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.communicator.disconnect()
