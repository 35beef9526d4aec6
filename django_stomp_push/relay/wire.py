"""What the relay and the server processes of a machine say to each other over the relay's unix socket (sans-IO).

Lines of ASCII, each ending in ``\\n``; a message line is followed by its payload, whose length it gives.

Server process to relay:
  ``SUB <channel>``     subscribe this connection to a Redis channel (the relay answers ``OK <channel>``)
  ``UNSUB <channel>``   unsubscribe it (no answer)

Relay to server process:
  ``OK <channel>``              Redis confirmed the subscription: what is published from now on arrives
  ``MSG <channel> <length>``    then ``length`` bytes: a message published on ``channel``, as Redis carried it
  ``RESET``                     the relay lost Redis and has subscribed again: messages may have been lost meanwhile
  ``ERR <text>``                the relay closes this connection, for the reason given

A channel is 1 to :data:`MAX_CHANNEL` printable ASCII characters without spaces (every channel-layer name is).
Anything else ends the connection with a :class:`WireError`: the two ends are the same package, so a malformed line
means a bug or a stranger on the socket, not a dialect to tolerate.
"""

from __future__ import annotations

#: Longest channel name carried (channels-redis names are the layer's prefix plus at most 100 characters).
MAX_CHANNEL = 255
#: Largest payload carried: Redis's own limit for a string (512 MiB) is far beyond any push; this bounds memory.
MAX_PAYLOAD = 64 * 1024 * 1024
_MAX_LINE = MAX_CHANNEL + 32


class WireError(ValueError):
    """A malformed line or payload: the connection cannot go on."""


def subscribe(channel: str) -> bytes:
    return b"SUB " + _channel(channel) + b"\n"


def unsubscribe(channel: str) -> bytes:
    return b"UNSUB " + _channel(channel) + b"\n"


def subscribed(channel: bytes) -> bytes:
    return b"OK " + channel + b"\n"


def message(channel: bytes, payload: bytes) -> bytes:
    return b"MSG %s %d\n%s" % (channel, len(payload), payload)


RESET = b"RESET\n"


def error(text: str) -> bytes:
    return b"ERR " + text.encode("ascii", "backslashreplace").replace(b"\n", b" ") + b"\n"


def _channel(channel: str) -> bytes:
    try:
        raw = channel.encode("ascii")
    except UnicodeEncodeError:
        raise WireError(f"not a channel name: {channel[:40]!r}") from None
    _check_channel(raw)
    return raw


def _check_channel(raw: bytes) -> None:
    if not 0 < len(raw) <= MAX_CHANNEL or not all(0x21 <= byte <= 0x7E for byte in raw):
        raise WireError(f"not a channel name: {raw[:40]!r}")


class Reader:
    """Bytes in (:meth:`feed`), ``(command, channel, payload)`` out: ``payload`` is None except for ``MSG``,
    ``channel`` empty for ``RESET``. ``commands`` are those this end may receive."""

    __slots__ = ("_buffer", "_commands", "_pending")

    def __init__(self, commands: frozenset[bytes]) -> None:
        self._buffer = bytearray()
        self._commands = commands
        self._pending: tuple[bytes, int] | None = None  # a MSG line read, its payload not yet complete

    def feed(self, data: bytes) -> list[tuple[bytes, bytes, bytes | None]]:
        buffer = self._buffer
        buffer += data
        out: list[tuple[bytes, bytes, bytes | None]] = []
        start = 0
        while True:
            if self._pending is not None:
                channel, length = self._pending
                if len(buffer) - start < length:
                    break
                out.append((b"MSG", channel, bytes(buffer[start : start + length])))
                start += length
                self._pending = None
                continue
            end = buffer.find(b"\n", start, start + _MAX_LINE + 1)
            if end < 0:
                if len(buffer) - start > _MAX_LINE:
                    raise WireError("line too long")
                break
            line = bytes(buffer[start:end])
            start = end + 1
            command, _, rest = line.partition(b" ")
            if command not in self._commands:
                raise WireError(f"unknown command {command[:16]!r}")
            if command == b"RESET":
                out.append((command, b"", None))
            elif command == b"MSG":
                channel, _, size = rest.partition(b" ")
                _check_channel(channel)
                if not size.isdigit() or int(size) > MAX_PAYLOAD:
                    raise WireError(f"bad payload length {size[:16]!r}")
                self._pending = (channel, int(size))
            elif command == b"ERR":
                out.append((command, rest, None))
            else:
                _check_channel(rest)
                out.append((command, rest, None))
        del buffer[:start]
        return out


#: What the relay accepts from a server process, and what a server process accepts from the relay.
FROM_SERVER = frozenset({b"SUB", b"UNSUB"})
FROM_RELAY = frozenset({b"OK", b"MSG", b"RESET", b"ERR"})
