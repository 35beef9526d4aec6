"""STOMP frames and their encoding, per protocol version.

Escaping of header names and values (STOMP 1.1 and 1.2):

=========  ==========  ==========
octet      1.1         1.2
=========  ==========  ==========
``\\``     ``\\\\``    ``\\\\``
LF         ``\\n``     ``\\n``
``:``      ``\\c``     ``\\c``
CR         (raw)       ``\\r``
=========  ==========  ==========

STOMP 1.0 defines no escaping, and CONNECT/CONNECTED frames are never escaped in any version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from .errors import MalformedFrame

V10, V11, V12 = "1.0", "1.1", "1.2"
VERSIONS: tuple[str, ...] = (V10, V11, V12)

HEARTBEAT = b"\n"
"""What a heart-beat is on the wire: one end-of-line between frames."""

CLIENT_COMMANDS = frozenset(
    {"CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN", "COMMIT", "ABORT", "DISCONNECT"}
)
SERVER_COMMANDS = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})
UNESCAPED_COMMANDS = frozenset({"CONNECT", "CONNECTED"})

# NUL cannot be escaped in any version and would end the frame: it is sent as U+FFFD (the parser refuses it in
# incoming frames, and push() in its headers; this guards what the application writes itself, e.g. a close reason).
_ESCAPE_11 = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c", "\x00": "\ufffd"})
_ESCAPE_12 = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c", "\r": "\\r", "\x00": "\ufffd"})
_UNESCAPE = {
    V11: {"\\": "\\", "n": "\n", "c": ":"},
    V12: {"\\": "\\", "n": "\n", "c": ":", "r": "\r"},
}


@dataclass(slots=True)
class Frame:
    """One STOMP frame. ``headers`` keeps the first occurrence of a repeated header, as the spec says."""

    command: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class HeadersAndBody(Protocol):
    """What :class:`FrameContent` reads of its ``frame``: a :class:`Frame`, or an event that carries a body."""

    headers: dict[str, str]
    body: bytes


class FrameContent:
    """The ``headers``, ``body`` and ``text`` of a class's ``frame``, for the classes that hand a frame to users.

    ``_text_errors`` is how :attr:`text` treats bytes that are not UTF-8 (``"strict"``: it raises).
    """

    __slots__ = ()
    frame: HeadersAndBody
    _text_errors: ClassVar[str] = "strict"

    @property
    def headers(self) -> dict[str, str]:
        """Every header of the frame."""
        return self.frame.headers

    @property
    def body(self) -> bytes:
        """The body, as bytes."""
        return self.frame.body

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.frame.body.decode("utf-8", self._text_errors)


def escape(value: str, version: str, command: str = "") -> str:
    """Escape a header name or value for ``version``; identity for 1.0 and for CONNECT/CONNECTED."""
    if version == V10 or command in UNESCAPED_COMMANDS:
        return value
    return value.translate(_ESCAPE_12 if version == V12 else _ESCAPE_11)


def unescape(value: str, version: str, command: str = "") -> str:
    """Undo :func:`escape`; an undefined escape sequence is a fatal :class:`MalformedFrame`."""
    if version == V10 or command in UNESCAPED_COMMANDS or "\\" not in value:
        return value
    table = _UNESCAPE[version]
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = value[i + 1] if i + 1 < n else ""
        if nxt not in table:
            seq = "\\" + nxt
            raise MalformedFrame("invalid header escape", f"undefined escape sequence {seq!r} in STOMP {version}")
        out.append(table[nxt])
        i += 2
    return "".join(out)


def sanitize_10(value: str) -> str:
    """STOMP 1.0 cannot carry LF or ``:`` ambiguity-free in values: replace LF/CR (and NUL, which would end the
    frame) so a frame stays well formed."""
    return value.replace("\r", " ").replace("\n", " ").replace("\x00", "\ufffd")


def header_lines(headers: Mapping[str, str] | Iterable[tuple[str, str]], version: str, command: str) -> str:
    """Header lines of a ``command`` frame, each ending with LF, escaped (or sanitised) for ``version``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    if version == V10 or command in UNESCAPED_COMMANDS:
        return "".join(f"{sanitize_10(k)}:{sanitize_10(v)}\n" for k, v in items)
    return "".join(f"{escape(k, version)}:{escape(v, version)}\n" for k, v in items)


def encode_headers(command: str, headers: Mapping[str, str] | Iterable[tuple[str, str]], version: str) -> str:
    """The command line and header lines of a frame, ending with the blank line."""
    return f"{command}\n{header_lines(headers, version, command)}\n"


def encode(frame: Frame, version: str = V12) -> bytes:
    """Serialise a frame. A body that contains NUL gets a ``content-length`` header if it has none."""
    headers = frame.headers
    if b"\x00" in frame.body and "content-length" not in headers:
        headers = {**headers, "content-length": str(len(frame.body))}
    return encode_headers(frame.command, headers, version).encode() + frame.body + b"\x00"
