"""Let daphne send the close code and reason the application asked for.

daphne closes a WebSocket through autobahn's ``sendClose()``, which refuses every code but 1000 and 3000-4999
(so ``{"type": "websocket.close", "code": 1008}`` raises inside daphne and the client sees 1006), and daphne
drops the ASGI close ``reason``. A session-bound push connection exists to tell its client *why* it closed,
so on start-up (``AppConfig.ready``) this module wraps daphne's reply handler to send the close frame itself,
with the code and reason from the ASGI message. Codes are still checked against RFC 6455 §7.4.
"""

from __future__ import annotations

import collections.abc
import struct
from typing import Any

_PATCHED = "_django_stomp_push_close"
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")
_TEXT, _BINARY = 0x81, 0x82  # FIN + opcode: a whole, unfragmented message


def _valid_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or 3000 <= code <= 4999


def install() -> bool:
    """Wrap ``daphne.ws_protocol.WebSocketProtocol.handle_reply``; returns False when daphne is absent."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return False
    if getattr(WebSocketProtocol.handle_reply, _PATCHED, False):
        return True
    original = WebSocketProtocol.handle_reply

    def handle_reply(self: Any, message: dict[str, Any]) -> Any:
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            code = message.get("code") or 1000
            if isinstance(code, int) and _valid_code(code):
                reason = message.get("reason") or ""
                # At most 123 bytes (RFC 6455 §5.5), cut on a character boundary: a split character would make the
                # close frame invalid UTF-8, and the client would fail the connection instead of reading the reason.
                reason_utf8 = (
                    reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
                    if isinstance(reason, str)
                    else b""
                )
                self.sendCloseFrame(code=code, reasonUtf8=reason_utf8 or None, isReply=False)
                return None
        return original(self, message)

    setattr(handle_reply, _PATCHED, True)
    WebSocketProtocol.handle_reply = handle_reply
    return True


class DaphneTransport:
    """The daphne WebSocket protocol behind an ASGI ``send``, for the two things ASGI cannot do.

    - :meth:`backlog`: daphne's ``send`` never waits; it hands each message to Twisted, whose transport buffers
      without bound when the client stops reading. The outbound limit must count those bytes too.
    - :meth:`send_now`: on the push path, the ASGI ``send`` costs a coroutine through Channels' session wrapper
      (which only acts on HTTP responses) and one through daphne's server, plus a task wake-up per delivery, all
      to end in a synchronous call. ``send_now`` makes that call directly; the bytes and their order are the same.
      Once :meth:`write_through` has checked that autobahn would send the message as one plain frame, it builds
      that frame itself (see :meth:`_frame`).
    """

    __slots__ = ("_handle_reply", "_open", "_plain_frames", "protocol")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self._open = protocol.STATE_OPEN
        self._handle_reply = protocol.handle_reply
        self._plain_frames = False

    @classmethod
    def behind(cls, send: Any) -> DaphneTransport | None:
        """The daphne protocol behind ``send`` (through Channels' session wrapper), or None off daphne."""
        seen = 0
        while send is not None and seen < 8:
            seen += 1
            args = getattr(send, "args", None)
            if args and hasattr(args[0], "transport") and hasattr(args[0], "STATE_OPEN"):
                return cls(args[0])
            owner = getattr(send, "__self__", None)
            send = getattr(owner, "real_send", None) if owner is not None else None
        return None

    def backlog(self) -> int:
        """Bytes Twisted still holds for this client."""
        transport = getattr(self.protocol, "transport", None)
        if transport is None:
            return 0
        try:
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        except (AttributeError, TypeError):
            return 0

    def pause_reading(self) -> bool:
        """Stop reading from the client's socket (Twisted's ``IProducer.pauseProducing``); False if not possible.

        daphne queues every WebSocket message for the application without a bound, so not calling ``receive()``
        does not slow a flooding client down on daphne: its socket has to stop being read.
        """
        transport = getattr(self.protocol, "transport", None)
        pause = getattr(transport, "pauseProducing", None)
        if pause is None or not callable(getattr(transport, "resumeProducing", None)):
            return False
        pause()
        return True

    def resume_reading(self) -> None:
        transport = getattr(self.protocol, "transport", None)
        if transport is not None and getattr(transport, "connected", False):
            transport.resumeProducing()

    def send_now(self, message: dict[str, Any]) -> bool:
        """Send a ``websocket.send`` message synchronously; False when the WebSocket is not open (any more)."""
        protocol = self.protocol
        if protocol.state != self._open:
            return False
        if self._plain_frames and not protocol.send_queue:
            text = message.get("text")
            payload, opcode = (text.encode(), _TEXT) if text is not None else (message.get("bytes"), _BINARY)
            if payload:
                protocol.transport.write(self._frame(opcode, payload))
                return True
        self._handle_reply(message)
        return True

    @staticmethod
    def _frame(opcode: int, payload: bytes) -> bytes:
        """One unmasked, uncompressed, final WebSocket frame (RFC 6455 §5.2), as autobahn would build it."""
        size = len(payload)
        if size < 126:
            return bytes((opcode, size)) + payload
        if size < 65536:
            return _LEN16.pack(opcode, 126, size) + payload
        return _LEN64.pack(opcode, 127, size) + payload

    def _frames_are_plain(self) -> bool:
        """Would autobahn send each message as one frame of its payload, with nothing else to do per frame?

        Not with permessage-deflate, automatic fragmentation, masked server frames, or autobahn's frame/octet
        logging or timing; any attribute missing (another autobahn) also says no. autobahn's traffic counters
        (``trafficStats``, which daphne does not read) are not updated for these frames, and daphne's
        ``--websocket_max_message_size`` (1 MiB by default: "maximum WebSocket message size to accept", which
        autobahn also applies to what it sends) does not cap them: a large push reaches the client.
        """
        p = self.protocol
        missing = object()
        return (
            getattr(p, "_perMessageCompress", missing) is None
            and getattr(p, "autoFragmentSize", missing) == 0
            and getattr(p, "maskServerFrames", missing) is False
            and getattr(p, "logFrames", missing) is False
            and getattr(p, "logOctets", missing) is False
            and not getattr(p, "trackedTimings", missing)
            and isinstance(getattr(p, "send_queue", None), collections.abc.Sized)
        )

    def write_through(self) -> None:
        """Let frames go straight to the socket when Twisted holds nothing for this client.

        Twisted's ``transport.write`` always buffers and registers the socket with the event loop's selector,
        then writes on the next iteration and unregisters it: two epoll updates and a loop pass per frame,
        which profiles showed as a third of the push path. When the buffer is empty the frame is sent now;
        whatever the socket does not take (or any error) goes to Twisted's own ``write`` as before, so order,
        back-pressure accounting and error handling stay Twisted's. Plain TCP only (not TLS).
        """
        transport = getattr(self.protocol, "transport", None)
        sock = getattr(transport, "socket", None)
        if sock is None or getattr(transport, "TLS", False) or "write" in vars(transport):
            return
        self._plain_frames = self._frames_are_plain()
        buffered_write = transport.write

        def write(data: bytes) -> None:
            if (
                transport._tempDataLen
                or len(transport.dataBuffer) > transport.offset
                or not transport.connected
                or transport.disconnecting
            ):
                buffered_write(data)
                return
            try:
                sent = sock.send(data)
            except OSError:  # EAGAIN, or a broken connection: Twisted handles both
                sent = 0
            if sent < len(data):
                buffered_write(data[sent:])

        transport.write = write
