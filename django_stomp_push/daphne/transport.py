"""DaphneTransport: what a connection needs from daphne beyond ASGI, through public interfaces where they exist.

- :meth:`~DaphneTransport.pause_reading` / :meth:`~DaphneTransport.resume_reading`: daphne queues every WebSocket
  message for the application without a bound, so a flooding client is slowed down by not reading its socket:
  the transport is Twisted's ``IPushProducer``.
- :meth:`~DaphneTransport.backlog`: daphne's ``send`` never waits; Twisted buffers without bound for a client that
  stops reading, and the outbound limit must count those bytes too. On the fast path the seam reads them; else a
  :class:`WriteBufferWatch` (a producer registered through Twisted's ``IConsumer``) bounds them.
- :meth:`~DaphneTransport.send_frame`: the fast path. The ASGI ``send`` costs a
  coroutine through Channels' session wrapper and one through daphne's server, a task wake-up, autobahn's
  framing and a reactor pass per message. When the seam (:mod:`.seam`) holds, a frame built here goes straight
  to the socket; when it does not, these return False and the message takes the plain ASGI ``send``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from .seam import BINARY, SEAM, TEXT, FrameSender, held

logger = logging.getLogger("django_stomp_push")


def tcp_socket(transport: Any) -> socket.socket | None:
    """The socket under a plain (not TLS) TCP transport, from Twisted's public interfaces; else None."""
    from twisted.internet.interfaces import ISSLTransport, ISystemHandle, ITCPTransport

    if (
        not ITCPTransport.providedBy(transport)
        or ISSLTransport.providedBy(transport)
        or getattr(transport, "TLS", False)  # a TCP connection after startTLS()
        or not ISystemHandle.providedBy(transport)
    ):
        return None
    handle = transport.getHandle()
    return handle if isinstance(handle, socket.socket) else None


class WriteBufferWatch:
    """A push producer registered on a Twisted transport, to bound what its write buffer holds.

    Twisted calls ``pauseProducing()`` when the buffer passes ``transport.bufferSize`` (64 KiB) and
    ``resumeProducing()`` once it is empty. Until then the buffer holds at most ``bufferSize``, which this does
    not count (as an asyncio transport's high-water mark); past it, with autobahn's count of the bytes it handed
    to the transport (``trafficStats``), it is bounded from above: ``bufferSize`` plus what was written since.
    """

    __slots__ = ("_high_water", "_mark", "_sent", "_transport")

    def __init__(self, transport: Any, sent: Callable[[], int], high_water: int) -> None:
        self._transport = transport
        self._sent = sent
        self._high_water = high_water
        self._mark: int | None = None  # bytes sent when Twisted paused us; None while it is not paused

    @classmethod
    def attach(cls, protocol: Any) -> WriteBufferWatch | None:
        """Register a watch on ``protocol``'s transport; None if the transport or autobahn cannot support one."""
        from twisted.internet.interfaces import IConsumer

        transport = protocol.transport
        stats: Any = getattr(protocol, "trafficStats", None)
        if not IConsumer.providedBy(transport) or not isinstance(getattr(stats, "outgoingOctetsWireLevel", None), int):
            return None
        high_water = getattr(transport, "bufferSize", None)
        watch = cls(transport, lambda: stats.outgoingOctetsWireLevel, high_water if isinstance(high_water, int) else 0)
        # The HTTP channel that carried the upgrade is still registered as the producer (a transport has one);
        # with its request turned into a WebSocket it has nothing left to pause.
        transport.unregisterProducer()
        transport.registerProducer(watch, True)
        return watch

    def held(self) -> int:
        """0 while Twisted's buffer is under ``bufferSize``; past it, a bound from above of what it holds."""
        mark = self._mark
        return 0 if mark is None else self._high_water + self._sent() - mark

    # IPushProducer, called by the transport

    def pauseProducing(self) -> None:
        if self._mark is None:  # Twisted calls it again on every write while the buffer stays full
            self._mark = self._sent()

    def resumeProducing(self) -> None:
        self._mark = None
        transport = self._transport
        if getattr(transport, "disconnecting", False):
            # A transport with a paused producer never finishes loseConnection(): let the close complete.
            transport.unregisterProducer()

    def stopProducing(self) -> None:
        self._mark = None


class DaphneTransport:
    """The daphne WebSocket protocol behind an ASGI ``send``, for what ASGI cannot do (see the module)."""

    __slots__ = ("_send", "_watch", "protocol")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self._send: FrameSender | None = None  # the fast path, once open and if the seam holds
        self._watch: WriteBufferWatch | None = None  # else this, once open

    @classmethod
    def behind(cls, send: Any) -> DaphneTransport | None:
        """The daphne protocol behind ``send`` (through Channels' session wrapper), or None off daphne."""
        protocol = SEAM.protocol_behind(send)
        return None if protocol is None else cls(protocol)

    @property
    def fast(self) -> bool:
        """Are frames written by :meth:`send_frame` (True), or by the ASGI ``send`` (False)?"""
        return self._send is not None

    def write_through(self) -> None:
        """Call once the WebSocket is accepted: take the fast path if this connection can, else watch the buffer.

        Plain TCP only (not TLS), and only where autobahn would send plain frames (no permessage-deflate, ...).
        """
        if self._send is not None or self._watch is not None:
            return
        protocol = self.protocol
        if protocol.transport is None:  # already gone
            return
        try:
            sock = tcp_socket(protocol.transport)
            if sock is not None:
                self._send = SEAM.frame_sender(protocol, sock)
            if self._send is None:
                self._watch = WriteBufferWatch.attach(protocol)
        except Exception:  # a surprise from a public interface: this connection keeps the plain ASGI send
            logger.warning("django-stomp-push: daphne fast path and write-buffer watch unavailable", exc_info=True)

    def send_frame(self, data: str | bytes | None) -> bool:
        """Send one text (``str``) or binary message now; False when it must take the ASGI ``send`` instead."""
        send = self._send
        if send is None or not data:
            return False
        if isinstance(data, str):
            return send(TEXT, data.encode())
        return send(BINARY, data)

    def backlog(self) -> int:
        """Bytes daphne's Twisted transport still holds for this client.

        On the fallback: 0 up to Twisted's ``bufferSize`` (64 KiB), a bound from above past it.
        """
        if self._send is not None:
            transport = self.protocol.transport
            return held(transport) if transport is not None else 0
        watch = self._watch
        return watch.held() if watch is not None else 0

    def pause_reading(self) -> bool:
        """Stop reading from the client's socket (Twisted's ``IPushProducer.pauseProducing``); False if not possible."""
        from twisted.internet.interfaces import IPushProducer

        transport = self.protocol.transport
        if transport is None or not IPushProducer.providedBy(transport):
            return False
        transport.pauseProducing()
        return True

    def resume_reading(self) -> None:
        """Undo :meth:`pause_reading` (Twisted resumes only a connection that is not closing)."""
        transport = self.protocol.transport
        if transport is not None:
            transport.resumeProducing()
