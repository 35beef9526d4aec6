"""Incremental STOMP frame parser.

Bytes go in with :meth:`FrameParser.feed`, complete frames come out. One WebSocket message may hold several
frames, a frame may be split over several messages, and end-of-lines between frames (heart-beats) are
skipped. Everything the parser buffers is bounded by :class:`Limits`: a frame that cannot fit raises
:class:`~.errors.FrameTooLarge` as soon as that is known, not when it is complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import FrameTooLarge, HeaderTooLong, MalformedFrame, TooManyHeaders
from .frames import V12, Frame, unescape

_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits for incoming frames, and per-connection limits the protocol state enforces."""

    max_frame_size: int = 64 * 1024
    max_header_count: int = 64
    max_header_length: int = 8 * 1024
    max_subscriptions: int = 256
    max_transactions: int = 16
    max_transaction_frames: int = 256
    max_pending_acks: int = 1024


class FrameParser:
    """Turns a byte stream into :class:`Frame` objects, enforcing :class:`Limits`."""

    def __init__(self, limits: Limits | None = None, version: str = V12) -> None:
        self.limits = limits or Limits()
        #: The negotiated version decides header unescaping; the connection updates it after CONNECT.
        self.version = version
        self._buf = bytearray()
        #: How many heart-beat end-of-lines were skipped so far.
        self.heartbeats = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data`` and return every frame it completes, in order."""
        self.receive_data(data)
        return list(iter(self.next_frame, None))

    def receive_data(self, data: bytes) -> None:
        """Add ``data`` without parsing it yet; take the frames out with :meth:`next_frame`."""
        self._buf += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or ``None`` until more data arrives.

        One frame at a time lets the caller change :attr:`version` between two frames of one chunk, as CONNECT does.
        """
        return self._next_frame()

    def _skip_heartbeats(self) -> None:
        buf = self._buf
        i, n = 0, len(buf)
        while i < n:
            if buf[i] == 0x0A:
                i += 1
            elif buf[i] == 0x0D and i + 1 < n and buf[i + 1] == 0x0A:
                i += 2
            else:
                break
            self.heartbeats += 1
        if i:
            del buf[:i]

    def _next_frame(self) -> Frame | None:
        self._skip_heartbeats()
        buf, limits = self._buf, self.limits
        if not buf:
            return None
        end = _END_OF_HEADERS.search(buf)
        if end is None:
            self._check_incomplete_head()
            return None
        head_end, body_start = end.start(), end.end()
        if body_start > limits.max_frame_size:
            raise FrameTooLarge("frame too large", f"headers exceed {limits.max_frame_size} bytes")
        command, headers = self._parse_head(bytes(buf[:head_end]))
        length_header = headers.get("content-length")
        if length_header is not None:
            length = _content_length(length_header)
            if body_start + length > limits.max_frame_size:
                raise FrameTooLarge(
                    "frame too large", f"content-length {length} exceeds the {limits.max_frame_size}-byte limit"
                )
            if len(buf) < body_start + length + 1:
                return None
            if buf[body_start + length] != 0:
                raise MalformedFrame("frame not terminated", "no NUL octet after content-length bytes of body")
            body_end = body_start + length
        else:
            body_end = buf.find(b"\x00", body_start)
            if body_end < 0:
                if len(buf) > limits.max_frame_size:
                    raise FrameTooLarge("frame too large", f"no NUL within {limits.max_frame_size} bytes")
                return None
            if body_end > limits.max_frame_size:
                raise FrameTooLarge("frame too large", f"body exceeds the {limits.max_frame_size}-byte limit")
        body = bytes(buf[body_start:body_end])
        del buf[: body_end + 1]
        return Frame(command, headers, body)

    def _check_incomplete_head(self) -> None:
        """Fail early on a head that can never fit, without waiting for its end."""
        buf, limits = self._buf, self.limits
        if len(buf) > limits.max_frame_size:
            raise FrameTooLarge("frame too large", f"no end of headers within {limits.max_frame_size} bytes")
        last_line = len(buf) - (buf.rfind(b"\n") + 1)
        if buf.endswith(b"\r"):  # may be the start of a CRLF, which is not part of the line
            last_line -= 1
        if last_line > limits.max_header_length:
            raise HeaderTooLong("header too long", f"a header line exceeds {limits.max_header_length} bytes")
        if buf.count(b"\n") > limits.max_header_count + 1:
            raise TooManyHeaders("too many headers", f"more than {limits.max_header_count} headers")

    def _parse_head(self, head: bytes) -> tuple[str, dict[str, str]]:
        limits = self.limits
        lines = head.split(b"\n")
        if len(lines) - 1 > limits.max_header_count:
            count = len(lines) - 1
            raise TooManyHeaders("too many headers", f"{count} headers; the limit is {limits.max_header_count}")
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        # Measured in bytes, like the check on an incomplete head: how a frame is split must not matter.
        if any(len(line) > limits.max_header_length for line in lines):
            raise HeaderTooLong("header too long", f"a header line exceeds {limits.max_header_length} bytes")
        try:
            text = [line.decode("utf-8") for line in lines]
        except UnicodeDecodeError as exc:
            raise MalformedFrame("invalid UTF-8 in frame headers", str(exc)) from None
        command = text[0]
        if not command or len(command) > 32 or not command.isalpha() or not command.isupper():
            raise MalformedFrame("malformed command line", f"{command[:32]!r} is not a STOMP command")
        version = self.version
        headers: dict[str, str] = {}
        for line in text[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise MalformedFrame("malformed header", f"header line without ':' in {command} frame")
            name = unescape(name, version, command)
            if name not in headers:  # repeated headers: the first one wins
                headers[name] = unescape(value, version, command)
        return command, headers


def _content_length(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 12:  # str.isdigit alone accepts "²"
        raise MalformedFrame("invalid content-length", f"{value[:20]!r} is not a non-negative integer")
    return int(value)
