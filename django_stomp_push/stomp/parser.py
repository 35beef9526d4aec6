"""Incremental STOMP frame parser.

Bytes go in with :meth:`FrameParser.feed`, complete frames come out. One WebSocket message may hold several
frames, a frame may be split over several messages, and end-of-lines between frames (heart-beats) are
skipped. Everything the parser buffers is bounded by :class:`Limits`: a frame that cannot fit raises
:class:`~.errors.FrameTooLarge` as soon as that is known, not when it is complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from .errors import FrameTooLarge, HeaderTooLong, MalformedFrame, TooManyHeaders
from .frames import V12, Frame, unescape

_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")
_LF, _CR = 0x0A, 0x0D


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


class _HeadScan(NamedTuple):
    """How far the head of the frame being received has been looked at (positions from the frame's start)."""

    searched: int  # bytes searched for the end of the head
    lines: int  # line feeds in those bytes
    line_start: int  # where the line being received begins
    longest_line: int  # the longest complete line, without its end-of-line


_NOTHING_SCANNED = _HeadScan(0, 0, 0, 0)

_Head = tuple[str, dict[str, str], int | None]  # command, headers, content-length


class FrameParser:
    """Turns a byte stream into :class:`Frame` objects, enforcing :class:`Limits`.

    The cost is linear in the bytes received however they are split: the parser remembers how far it has
    looked into the frame being received, so each byte is examined a bounded number of times.
    """

    def __init__(self, limits: Limits | None = None, version: str = V12) -> None:
        self.limits = limits or Limits()
        #: The negotiated version decides header unescaping; the connection updates it after CONNECT.
        self.version = version
        #: How many heart-beat end-of-lines were skipped so far.
        self.heartbeats = 0
        # The bytes not parsed yet are _buf[_start:]. A chunk is kept as it came: it is copied only when a
        # frame spans two chunks. The frame being received begins at _start; the positions below count from it.
        self._buf: bytes | bytearray = b""
        self._start = 0
        self._head_scan: _HeadScan | None = None  # None until a frame begins: heart-beats may come first
        # Set when a head has arrived and its body has not: where they end and begin, how far the body was
        # searched for its NUL, the head read (command, headers, content-length) and the version it was read in.
        self._head_end = self._body_start = self._body_searched = -1
        self._head: _Head = ("", {}, None)
        self._head_version = ""

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf) - self._start

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data`` and return every frame it completes, in order."""
        self.receive_data(data)
        return list(iter(self.next_frame, None))

    def receive_data(self, data: bytes) -> None:
        """Add ``data`` without parsing it yet; take the frames out with :meth:`next_frame`."""
        buf, start = self._buf, self._start
        if start == len(buf):
            self._buf = data if type(data) is bytes else bytes(data)  # a bytes chunk is kept, not copied
        elif isinstance(buf, bytearray):
            del buf[:start]
            buf += data
        else:
            self._buf = bytearray(memoryview(buf)[start:])
            self._buf += data
        self._start = 0

    def next_frame(self) -> Frame | None:
        """The next complete frame, or ``None`` until more data arrives.

        One frame at a time lets the caller change :attr:`version` between two frames of one chunk, as CONNECT does.
        """
        if self._body_start >= 0:
            return self._receive_body()
        span = self._receive_head()
        if span is None:
            return None
        head_end, body_start = span
        head = self._read_head(head_end, body_start)
        frame = self._take_body(body_start, body_start, head)
        if frame is None:  # the body is still to come: remember the head (_take_body remembers its search)
            self._head_end, self._body_start, self._head, self._head_version = head_end, body_start, head, self.version
        return frame

    def _receive_body(self) -> Frame | None:
        head = self._head
        if self._head_version != self.version:  # read the head again, as the version now says
            head = self._head = self._read_head(self._head_end, self._body_start)
            self._head_version, self._body_searched = self.version, self._body_start
        frame = self._take_body(self._body_start, self._body_searched, head)
        if frame is not None:
            self._body_start = -1
        return frame

    def _receive_head(self) -> tuple[int, int] | None:
        """Look for the end of the head of the frame being received: where the head ends and the body begins."""
        buf, start = self._buf, self._start
        scan = self._head_scan
        if scan is None:  # between frames
            size = len(buf)
            if start == size or buf[start] == _LF or buf[start] == _CR:
                start = self._skip_heartbeats()
                if start == size:
                    self._buf, self._start = b"", 0  # let go of a chunk fully parsed
                    return None
                if start + 1 == size and buf[start] == _CR:  # may be the start of a CRLF heart-beat
                    self._check_incomplete_head(_NOTHING_SCANNED)
                    return None
            scan, search_from = _NOTHING_SCANNED, start
        else:
            # An end of headers is at most 4 bytes long: the last 3 bytes searched may be the start of one.
            search_from = start + max(scan.searched - 3, 0)
        end = _END_OF_HEADERS.search(buf, search_from)
        if end is None:
            self._head_scan = scan = self._scan_lines(scan)
            self._check_incomplete_head(scan)
            return None
        if end.end() - start > self.limits.max_frame_size:
            raise FrameTooLarge("frame too large", f"headers exceed {self.limits.max_frame_size} bytes")
        self._head_scan = None
        return end.start() - start, end.end() - start

    def _skip_heartbeats(self) -> int:
        """Skip the end-of-lines before a frame; where the rest begins."""
        buf, start = self._buf, self._start
        size, eols = len(buf), 0
        while start < size:  # a loop beats a regular expression on the usual one end-of-line
            if buf[start] == _LF:
                start += 1
            elif buf[start] == _CR and start + 1 < size and buf[start + 1] == _LF:
                start += 2
            else:
                break
            eols += 1
        self.heartbeats += eols
        self._start = start
        return start

    def _scan_lines(self, scan: _HeadScan) -> _HeadScan:
        """``scan`` brought up to the end of the buffer: line feeds counted, the lines they end measured."""
        buf, start = self._buf, self._start
        since, searched = start + scan.searched, len(buf) - start
        last = buf.rfind(b"\n", since)
        if last < 0:
            return scan._replace(searched=searched)
        line_start, longest = start + scan.line_start, scan.longest_line
        if last - line_start > self.limits.max_header_length:  # only then may one of these lines be too long
            longest = max(longest, _longest_line(buf, line_start, last))
        return _HeadScan(searched, scan.lines + buf.count(b"\n", since, last + 1), last + 1 - start, longest)

    def _check_incomplete_head(self, scan: _HeadScan) -> None:
        """Fail early on a head that can never fit, without waiting for its end."""
        buf, limits = self._buf, self.limits
        size = len(buf) - self._start
        if size > limits.max_frame_size:
            raise FrameTooLarge("frame too large", f"no end of headers within {limits.max_frame_size} bytes")
        last_line = size - scan.line_start
        if buf[-1] == _CR:  # may be the start of a CRLF, which is not part of the line
            last_line -= 1
        if max(last_line, scan.longest_line) > limits.max_header_length:
            raise HeaderTooLong("header too long", f"a header line exceeds {limits.max_header_length} bytes")
        if scan.lines > limits.max_header_count + 1:
            raise TooManyHeaders("too many headers", f"more than {limits.max_header_count} headers")

    def _read_head(self, head_end: int, body_start: int) -> _Head:
        start, limits = self._start, self.limits
        command, headers = self._parse_head(bytes(self._buf[start : start + head_end]))
        length_header = headers.get("content-length")
        if length_header is None:
            return command, headers, None
        length = _content_length(length_header)
        if body_start + length > limits.max_frame_size:
            raise FrameTooLarge(
                "frame too large", f"content-length {length} exceeds the {limits.max_frame_size}-byte limit"
            )
        return command, headers, length

    def _take_body(self, body_start: int, searched: int, head: _Head) -> Frame | None:
        """The frame, if its body has arrived; ``searched``: how far it was searched for its NUL."""
        buf, start, limits = self._buf, self._start, self.limits
        command, headers, length = head
        body_start += start
        if length is not None:
            body_end = body_start + length
            if len(buf) <= body_end:
                return None
            if buf[body_end] != 0:
                raise MalformedFrame("frame not terminated", "no NUL octet after content-length bytes of body")
        else:
            body_end = buf.find(b"\x00", start + searched)
            if body_end < 0:
                if len(buf) - start > limits.max_frame_size:
                    raise FrameTooLarge("frame too large", f"no NUL within {limits.max_frame_size} bytes")
                self._body_searched = len(buf) - start
                return None
            if body_end - start > limits.max_frame_size:
                raise FrameTooLarge("frame too large", f"body exceeds the {limits.max_frame_size}-byte limit")
        self._start = body_end + 1
        return Frame(command, headers, bytes(buf[body_start:body_end]))

    def _parse_head(self, head: bytes) -> tuple[str, dict[str, str]]:
        limits = self.limits
        lines = head.split(b"\n")
        if len(lines) - 1 > limits.max_header_count:
            count = len(lines) - 1
            raise TooManyHeaders("too many headers", f"{count} headers; the limit is {limits.max_header_count}")
        if b"\r" in head:
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        # Measured in bytes, like the check on an incomplete head: how a frame is split must not matter.
        if max(map(len, lines)) > limits.max_header_length:
            raise HeaderTooLong("header too long", f"a header line exceeds {limits.max_header_length} bytes")
        if b"\x00" in head:
            # A NUL ends a frame on the wire: forwarded in a header, it would let a client forge frames.
            raise _nul_in_head(lines)
        try:
            text = list(map(bytes.decode, lines))  # UTF-8, strict
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
            # Most headers hold no backslash: not calling unescape for them makes a frame parse 10% faster.
            if "\\" in name:
                name = unescape(name, version, command)
            if name not in headers:  # repeated headers: the first one wins
                headers[name] = unescape(value, version, command) if "\\" in value else value
        return command, headers


def _longest_line(buf: bytes | bytearray, start: int, last: int) -> int:
    """The length of the longest line in ``buf[start : last + 1]``, which ends with LF, without CR LF or LF."""
    longest = 0
    while start <= last:
        end = buf.find(b"\n", start, last + 1)
        longest = max(longest, end - start - (end > start and buf[end - 1] == _CR))
        start = end + 1
    return longest


def _nul_in_head(lines: list[bytes]) -> MalformedFrame:
    """The error for the first of ``lines`` (the command line, then header lines) that holds a NUL."""
    index, line = next((i, line) for i, line in enumerate(lines) if b"\x00" in line)
    where = "header" if index else "command line"
    name = (line.partition(b":")[0] if index else line).decode("utf-8", "replace")[:40]
    return MalformedFrame("NUL in header", f"{where} {name!r} holds a NUL octet")


def _content_length(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 12:  # str.isdigit alone accepts "²"
        raise MalformedFrame("invalid content-length", f"{value[:20]!r} is not a non-negative integer")
    return int(value)
