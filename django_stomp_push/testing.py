"""Test helpers for projects that use django-stomp-push: a STOMP client over Channels' ``WebsocketCommunicator``.

The client runs the real STOMP endpoint in the test's own event loop, with no server and no socket: frames are
encoded and parsed by the package's own protocol code (:mod:`django_stomp_push.stomp`), and everything the
endpoint does (the session binding, subscriptions, handlers, the hub, the closes) is what it does in production.
With the in-memory channel layer, a push made in the test reaches the endpoint at once (docs: "Testing")::

    async with StompCommunicator(session_key=await asession_key_for(user)) as client:
        await client.subscribe("/topic/prices")
        await apush("/topic/prices", {"EURUSD": 1.0842})
        assert (await client.receive_message("/topic/prices")).json() == {"EURUSD": 1.0842}
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async

from .stomp import Frame, FrameParser, Limits, encode
from .stomp.frames import FrameContent

__all__ = ["ConnectionClosed", "ReceivedMessage", "StompCommunicator", "asession_key_for", "session_key_for"]

#: What the test client accepts from the server: far above any server limit, so a large push is not refused here.
CLIENT_LIMITS = Limits(max_frame_size=64 * 1024 * 1024, max_header_count=10_000, max_header_length=1024 * 1024)


def session_key_for(user: Any = None) -> str:
    """Create a saved Django session, signed in as ``user`` (anonymous when None), and return its key.

    It is the session a browser gets from your login view (``django.test.Client.force_login``), so the
    connection is bound to it exactly as in production: logging it out or deleting it closes the connection.
    Synchronous (it writes to the session store): in ``async`` code use :func:`asession_key_for`.
    """
    from django.conf import settings
    from django.test import Client

    client = Client()
    if user is not None:
        client.force_login(user)
        return str(client.cookies[settings.SESSION_COOKIE_NAME].value)
    from importlib import import_module

    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session.save(must_create=True)
    return str(session.session_key)


async def asession_key_for(user: Any = None) -> str:
    """:func:`session_key_for` from ``async`` code."""
    key: str = await database_sync_to_async(session_key_for)(user)
    return key


class ConnectionClosed(AssertionError):
    """The server closed the WebSocket while the test waited for something else."""

    def __init__(self, code: int | None, reason: str, error: Frame | None = None) -> None:
        said = f", after ERROR {error.headers.get('message', '')!r}" if error is not None else ""
        super().__init__(f"the server closed the WebSocket with {code} {reason!r}{said}")
        self.code = code
        self.reason = reason
        self.error = error


@dataclass(frozen=True)
class ReceivedMessage(FrameContent):
    """A ``MESSAGE`` frame the client received."""

    frame: Frame

    @property
    def destination(self) -> str:
        """The ``destination`` header: what the client subscribed to."""
        return self.frame.headers.get("destination", "")

    @property
    def subscription(self) -> str:
        """The ``subscription`` header: the id of the subscription it came on."""
        return self.frame.headers.get("subscription", "")

    def json(self) -> Any:
        """The body parsed as JSON (a dict push arrives as ``application/json``)."""
        return json.loads(self.frame.body)


class StompCommunicator:
    """A STOMP client of the endpoint under test, in the test's event loop.

    ``application`` is the ASGI application to test; by default the package's own endpoint at ``/ws/stomp/``
    behind :func:`~django_stomp_push.routing.wrap` (Origin check, cookies, session). Pass your project's
    application (``from mysite.asgi import application``) to test your routing too. ``session_key`` goes in the
    session cookie of the handshake (see :func:`session_key_for`); ``origin`` must be in ``ALLOWED_HOSTS``
    (Django's test set-up adds ``testserver``).

    ``async with`` opens the WebSocket and sends ``CONNECT`` (failing unless the server answers ``CONNECTED``),
    and closes the WebSocket at the end. Every wait fails the test, with what came instead, after ``timeout``
    seconds.
    """

    def __init__(
        self,
        application: Any = None,
        path: str = "/ws/stomp/",
        *,
        session_key: str | None = None,
        origin: str | None = "http://testserver",
        subprotocols: tuple[str, ...] = ("v12.stomp", "v11.stomp", "v10.stomp"),
        headers: list[tuple[bytes, bytes]] | None = None,
        timeout: float = 3.0,
    ) -> None:
        from channels.testing import WebsocketCommunicator
        from django.conf import settings

        handshake = [(b"origin", origin.encode())] if origin else []
        if session_key:
            handshake.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()))
        if application is None:
            from channels.routing import URLRouter

            from .routing import websocket_urlpatterns, wrap

            application = wrap(URLRouter(websocket_urlpatterns(path.lstrip("/"))))
        self.communicator = WebsocketCommunicator(
            application, path, headers=handshake + list(headers or []), subprotocols=list(subprotocols)
        )
        self.timeout = timeout
        self.parser = FrameParser(CLIENT_LIMITS)
        #: The subprotocol the server accepted, once open.
        self.subprotocol: str | None = None
        #: Heart-beats received so far.
        self.heartbeats = 0
        #: The close code and reason, once the server closed.
        self.close_code: int | None = None
        self.close_reason = ""
        self._frames: list[Frame] = []
        self._open = False  # the WebSocket is open: accepted, and not closed by either side
        self._started = False  # the application runs (from the handshake until close())
        self._timed_out = False
        self._ids = 0

    async def __aenter__(self) -> StompCommunicator:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the WebSocket ---------------------------------------------------------------------------------------

    async def open(self) -> bool:
        """Open the WebSocket; False when the handshake is refused (an ``Origin`` not in ``ALLOWED_HOSTS``)."""
        self._started = True
        accepted, subprotocol_or_code = await self.communicator.connect(timeout=self.timeout)
        self._open = bool(accepted)
        if self._open:
            self.subprotocol = subprotocol_or_code
        else:
            self.close_code = subprotocol_or_code
        return self._open

    async def close(self) -> None:
        """Close the WebSocket from the client's side, whatever its state, and let the application finish."""
        self._open = False
        if self._started:
            self._started = False
            if not self.communicator.future.done():  # done: it ended, or a timeout stopped it
                await self.communicator.disconnect(timeout=self.timeout)

    # -- sending ---------------------------------------------------------------------------------------------

    async def send(self, command: str, headers: dict[str, str] | None = None, body: bytes | str = b"") -> None:
        """Send one frame as it is."""
        if isinstance(body, str):
            body = body.encode()
        data = encode(Frame(command, dict(headers or {}), body), self.parser.version)
        try:
            text = data.decode()
        except UnicodeDecodeError:  # a binary body: a binary WebSocket message, as a browser sends it
            await self.communicator.send_to(bytes_data=data)
        else:
            await self.communicator.send_to(text_data=text)

    async def connect(self, version: str = "1.2", host: str = "testserver", **headers: str) -> Frame:
        """Open the WebSocket if needed, send ``CONNECT`` and return the ``CONNECTED`` frame.

        Keyword arguments are extra headers, with ``_`` for ``-`` (``heart_beat="0,10000"``,
        ``X_CSRFToken=token``). To test a refused ``CONNECT``, :meth:`send` it and call :meth:`expect_error`.
        """
        if not self._open and not await self.open():
            raise AssertionError("the WebSocket handshake was refused (is the Origin in ALLOWED_HOSTS?)")
        extra = {name.replace("_", "-"): value for name, value in headers.items()}
        await self.send("CONNECT", {"accept-version": version, "host": host, **extra})
        frame = await self.receive()
        if frame.command != "CONNECTED":
            raise AssertionError(f"CONNECT was answered with {frame.command} {frame.headers}: {frame.body!r}")
        self.parser.version = frame.headers.get("version", "1.0")  # how the server escapes headers from now on
        return frame

    async def subscribe(self, destination: str, id: str | None = None, **headers: str) -> str:
        """``SUBSCRIBE`` and wait for its ``RECEIPT``, so that the subscription is in place; returns its id."""
        sub_id = id or self._next_id("sub")
        await self._with_receipt("SUBSCRIBE", {"id": sub_id, "destination": destination, **headers})
        return sub_id

    async def unsubscribe(self, id: str) -> None:
        """``UNSUBSCRIBE`` and wait for its ``RECEIPT``."""
        await self._with_receipt("UNSUBSCRIBE", {"id": id})

    async def publish(self, destination: str, body: Any = "", **headers: str) -> None:
        """``SEND`` ``body`` (a ``str``, ``bytes``, or anything else as JSON) to ``destination`` and wait for the
        ``RECEIPT``: an ``@handler`` has returned by then, and its reply, if any, is on its way (or already
        here: :meth:`receive_message` returns it)."""
        if not isinstance(body, (str, bytes)):
            body, headers = json.dumps(body), {"content-type": "application/json", **headers}
        await self._with_receipt("SEND", {"destination": destination, **headers}, body)

    async def disconnect(self) -> None:
        """``DISCONNECT`` with a receipt; the server answers, then closes with 1000."""
        await self._with_receipt("DISCONNECT", {})
        await self.expect_closed(1000)

    # -- receiving -------------------------------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> Frame:
        """The next frame (heart-beats are counted, not returned); :class:`ConnectionClosed` if the server
        closes first."""
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._frames:
            await self._read(max(0.01, deadline - loop.time()), timeout)
        return self._frames.pop(0)

    async def receive_message(self, destination: str | None = None, timeout: float | None = None) -> ReceivedMessage:
        """The next frame, which must be a ``MESSAGE`` (to ``destination``, when given)."""
        frame = await self._expect_frame("MESSAGE", timeout)
        message = ReceivedMessage(frame)
        if destination is not None and message.destination != destination:
            raise AssertionError(f"expected a MESSAGE to {destination}, got one to {message.destination}: {frame}")
        return message

    async def expect_error(
        self, message: str | None = None, code: int | None = None, timeout: float | None = None
    ) -> Frame:
        """The next frames are an ``ERROR`` (whose ``message`` header is ``message``, when given) and the close
        (with ``code``, when given); returns the ``ERROR`` frame."""
        error = await self._expect_frame("ERROR", timeout)
        if message is not None and error.headers.get("message") != message:
            raise AssertionError(f"expected ERROR {message!r}, got {error.headers.get('message')!r}: {error}")
        await self._expect_close(code, timeout, error)
        return error

    async def expect_closed(self, code: int | None = None, timeout: float | None = None) -> None:
        """The server closes the WebSocket next (with ``code``, when given), sending no other frame first."""
        await self._expect_close(code, timeout, None)

    async def _expect_close(self, code: int | None, timeout: float | None, error: Frame | None) -> None:
        try:
            frame = await self.receive(timeout)
        except ConnectionClosed as closed:
            if code is not None and closed.code != code:
                raise ConnectionClosed(closed.code, closed.reason, error) from None
            return
        raise AssertionError(f"expected the close, got {frame.command} {frame.headers}")

    async def assert_nothing_received(self, timeout: float = 0.1) -> None:
        """No frame (heart-beats aside) and no close within ``timeout`` seconds."""
        while not self._frames:
            if await self.communicator.receive_nothing(timeout=timeout):
                return
            await self._read(timeout, timeout)  # a heart-beat is counted; a close raises
        raise AssertionError(f"expected nothing, got {self._frames[0]}")

    # -- internals -------------------------------------------------------------------------------------------

    async def _read(self, timeout: float, waited: float) -> None:
        """Take one WebSocket message from the application: its frames, its heart-beats, or the close."""
        if self._timed_out:
            raise AssertionError("the application was stopped when an earlier wait timed out")
        if not self._open:
            raise ConnectionClosed(self.close_code, self.close_reason)
        try:
            output = await self.communicator.receive_output(timeout=timeout)
        except asyncio.TimeoutError:
            self._timed_out = True  # the communicator cancels the application when a wait times out
            raise AssertionError(f"nothing from the server within {waited:g}s") from None
        if output["type"] == "websocket.close":
            self._open = False
            self.close_code, self.close_reason = output.get("code"), output.get("reason") or ""
            raise ConnectionClosed(self.close_code, self.close_reason)
        data = output.get("bytes") or (output.get("text") or "").encode()
        before = self.parser.heartbeats
        self._frames.extend(self.parser.feed(data))
        self.heartbeats += self.parser.heartbeats - before

    async def _expect_frame(self, command: str, timeout: float | None) -> Frame:
        frame = await self.receive(timeout)
        if frame.command != command:
            raise AssertionError(f"expected {command}, got {frame.command} {frame.headers}: {frame.body[:200]!r}")
        return frame

    async def _with_receipt(self, command: str, headers: dict[str, str], body: bytes | str = b"") -> None:
        """Send the frame with a receipt and wait for the ``RECEIPT``; frames that come before it (a handler's
        reply, a push) stay for :meth:`receive`, an ``ERROR`` fails."""
        receipt = self._next_id("receipt")
        await self.send(command, {**headers, "receipt": receipt}, body)
        before: list[Frame] = []
        try:
            while True:
                frame = await self.receive()
                if frame.command == "RECEIPT" and frame.headers.get("receipt-id") == receipt:
                    return
                if frame.command == "ERROR":
                    raise AssertionError(f"{command} was answered with ERROR {frame.headers}: {frame.body!r}")
                before.append(frame)
        finally:
            self._frames[:0] = before

    def _next_id(self, kind: str) -> str:
        self._ids += 1
        return f"{kind}-{self._ids}"
