"""The one place that reads below the public interfaces of daphne, Twisted and autobahn (the push fast path).

What the fast path needs and no public interface gives:

- **which daphne protocol is behind an ASGI ``send``**: daphne hands the application
  ``functools.partial(server.handle_reply, protocol)``, which Channels' session middleware keeps as ``real_send``;
- **whether Twisted still holds bytes for the client, and how many**: ``FileDescriptor.dataBuffer``, ``offset`` and
  ``_tempDataLen``. A producer registered on the transport (public, see ``transport.WriteBufferWatch``) is told
  only when that buffer passes its high-water mark and when it is empty again: too coarse to put a frame on the
  socket ahead of Twisted without reordering bytes;
- **whether autobahn would send a message as one plain frame**: its protocol options and ``send_queue``. The frame
  is RFC 6455's; :func:`frame` builds it.

The seam is checked once per process, on the first connection that could use it (:meth:`Seam.verify`): the
installed versions against :data:`VERIFIED`, :func:`frame` against autobahn's own ``PreparedMessage`` for every
length form, the meaning of Twisted's buffer fields against Twisted's own ``write()``/``doWrite()`` on a probe,
and the live transport's and protocol's attributes and types. If anything fails, one warning names the versions
and the failure, and every connection of the process takes the plain ASGI ``send``: correct, and slower.
``tests/test_daphne_seam.py`` fails when the installed versions leave the table or a check fails.
"""

from __future__ import annotations

import logging
import struct
import sys
from collections import deque
from collections.abc import Callable
from importlib import metadata
from typing import Any, cast

logger = logging.getLogger("django_stomp_push")

#: Release series (major.minor) of each library this seam was verified with: tests/test_daphne_seam.py,
#: test_daphne_close.py, reliability/test_daphne_frames.py and test_slow_consumer.py pass with daphne 4.2.3,
#: Twisted 26.10.0, autobahn 26.11.1; daphne 4.2.3, Twisted 25.5.0, autobahn 25.12.2; and daphne 4.1.2,
#: Twisted 24.11.0, autobahn 24.4.2. (The seam reads each library apart from the others.)
VERIFIED: dict[str, tuple[str, ...]] = {
    "daphne": ("4.1", "4.2"),
    "Twisted": ("24.11", "25.5", "26.10"),
    "autobahn": ("24.4", "25.12", "26.11"),
}

TEXT, BINARY = 0x81, 0x82  # FIN + opcode: a whole, unfragmented message
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")

#: Payload sizes of the frame self-check: each RFC 6455 length form (7-, 16- and 64-bit) and its edges.
CHECK_SIZES = (0, 1, 125, 126, 127, 65_535, 65_536, 70_000)

#: A frame sender: ``send(opcode, payload)`` writes one message now; False when it cannot (then ASGI sends it).
FrameSender = Callable[[int, bytes], bool]


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, uncompressed, final WebSocket frame (RFC 6455 §5.2), as autobahn would build it."""
    size = len(payload)
    if size < 126:
        return bytes((opcode, size)) + payload
    if size < 65536:
        return _LEN16.pack(opcode, 126, size) + payload
    return _LEN64.pack(opcode, 127, size) + payload


def held(transport: Any) -> int:
    """Bytes Twisted still holds for the client of ``transport`` (not yet taken by the socket)."""
    return cast(int, len(transport.dataBuffer) - transport.offset + transport._tempDataLen)


def installed_versions() -> dict[str, str]:
    """The installed version of each library in :data:`VERIFIED` ("absent" when it is not installed)."""
    versions = {}
    for name in VERIFIED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def unverified_versions() -> list[str]:
    """One line per installed library whose release series is not in :data:`VERIFIED`."""
    return [
        f"{name} {version} (verified: {', '.join(VERIFIED[name])})"
        for name, version in installed_versions().items()
        if ".".join(version.split(".")[:2]) not in VERIFIED[name]
    ]


def frames_are_plain(protocol: Any) -> bool:
    """Would autobahn send each message of ``protocol`` as one frame of its payload, with nothing else to do?

    Not with permessage-deflate, automatic fragmentation, masked server frames, or autobahn's frame/octet logging
    or timing. autobahn's traffic counters are not updated for these frames (daphne does not read them), and
    daphne 4.2's ``--websocket-max-message-size``, which autobahn also applies to what it sends, does not cap them.
    """
    return (
        not protocol.websocket_extensions_in_use
        and protocol.autoFragmentSize == 0
        and protocol.maskServerFrames is False
        and protocol.logFrames is False
        and protocol.logOctets is False
        and not protocol.trackedTimings
    )


class Seam:
    """The fast path's private reads, checked once per process before any of them is trusted."""

    def __init__(self) -> None:
        self.checked = False
        self.failure: str | None = None
        self._protocol_class: Any = None

    def protocol_behind(self, send: Any) -> Any | None:
        """The daphne ``WebSocketProtocol`` behind ``send`` (through Channels' session wrapper), or None."""
        cls = self._protocol_class
        if cls is None:
            module = sys.modules.get("daphne.ws_protocol")  # imported by daphne's server: not there, not daphne
            cls = getattr(module, "WebSocketProtocol", None)
            if cls is None:
                return None
            self._protocol_class = cls
        for _ in range(8):
            args = getattr(send, "args", None)  # daphne's partial(server.handle_reply, protocol)
            if args and isinstance(args[0], cls):
                return args[0]
            send = getattr(getattr(send, "__self__", None), "real_send", None)  # Channels' session wrapper
            if send is None:
                return None
        return None

    def verify(self, protocol: Any) -> bool:
        """Check the seam on its first use in this process (one log line either way); True if it holds."""
        if not self.checked:
            self.checked = True
            try:
                self.failure = self.static_failure() or self.live_failure(protocol)
            except Exception as exc:  # any surprise below the public interfaces is a failed check
                self.failure = f"the self-check raised {exc!r}"
            installed = ", ".join(f"{name} {version}" for name, version in installed_versions().items())
            if self.failure is None:
                logger.info("django-stomp-push: daphne fast path on (%s)", installed)
            else:
                verified = "; ".join(f"{name} {', '.join(series)}" for name, series in VERIFIED.items())
                logger.warning(
                    "django-stomp-push: daphne fast path off, pushes take the plain ASGI send: %s "
                    "(installed: %s; verified: %s)",
                    self.failure,
                    installed,
                    verified,
                )
        return self.failure is None

    def frame_sender(self, protocol: Any, sock: Any) -> FrameSender | None:
        """A sender writing frames built here for ``protocol``, straight to ``sock`` when Twisted holds nothing.

        None when the seam failed its check, or this connection is not open or would not have plain frames.
        Twisted's ``transport.write`` always buffers and registers the socket with the reactor, then writes on
        the next loop iteration and unregisters it: two epoll updates and a loop pass per frame. When Twisted
        holds nothing for the client the frame is sent now; whatever the socket does not take (or any error)
        goes to Twisted's ``write``, so order, buffering and error handling stay Twisted's.
        """
        if not self.verify(protocol):
            return None
        open_state = protocol.STATE_OPEN
        if protocol.state != open_state or not frames_are_plain(protocol):
            return None
        transport = protocol.transport
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

        def send(opcode: int, payload: bytes) -> bool:
            if protocol.state != open_state or protocol.send_queue:  # autobahn still trickles something out
                return False
            write(frame(opcode, payload))
            return True

        # autobahn's own frames (a close, the reply to the client's close) go the same way: written now, in order
        # with ours. Left in Twisted's buffer, autobahn's reply to a client's close would be dropped with the TCP
        # connection it aborts right after (the client then sees 1006, not the clean close it asked for).
        transport.write = write
        return send

    # -- the self-check --------------------------------------------------------------------------------------

    @staticmethod
    def static_failure() -> str | None:
        """What the seam's checks that need no connection find wrong, or None."""
        unverified = unverified_versions()
        if unverified:
            return "not verified with " + ", ".join(unverified)
        return _frames_failure() or _buffer_failure()

    @staticmethod
    def live_failure(protocol: Any) -> str | None:
        """What is wrong with the attributes the seam reads on a live connection, or None."""
        from twisted.internet.abstract import FileDescriptor

        transport = protocol.transport
        if not isinstance(transport, FileDescriptor) or type(transport).doWrite is not FileDescriptor.doWrite:
            return f"{type(transport).__name__} does not write through Twisted's FileDescriptor.doWrite"
        if "write" in vars(transport):
            return "the transport's write() is replaced on the connection"
        for owner, name, kind in (
            (protocol, "state", int),
            (protocol, "STATE_OPEN", int),
            (protocol, "send_queue", deque),
            (protocol, "websocket_extensions_in_use", list),
            (protocol, "autoFragmentSize", int),
            (protocol, "maskServerFrames", bool),
            (protocol, "logFrames", bool),
            (protocol, "logOctets", bool),
            (transport, "dataBuffer", bytes),
            (transport, "offset", int),
            (transport, "_tempDataBuffer", list),
            (transport, "_tempDataLen", int),
            (transport, "connected", int),
            (transport, "disconnecting", int),
        ):
            value = getattr(owner, name, None)
            if not isinstance(value, kind):
                return f"{type(owner).__name__}.{name} is {type(value).__name__}, not {kind.__name__}"
        if not hasattr(protocol, "trackedTimings"):
            return f"{type(protocol).__name__}.trackedTimings is missing"
        if transport._tempDataLen != sum(map(len, transport._tempDataBuffer)) or held(transport) < 0:
            return "Twisted's buffer fields do not add up on the live transport"
        return None


def _frames_failure() -> str | None:
    """Does :func:`frame` build what autobahn builds (``PreparedMessage``, unmasked, uncompressed)?"""
    from autobahn.websocket.protocol import PreparedMessage

    for size in CHECK_SIZES:
        payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        for opcode, binary in ((TEXT, False), (BINARY, True)):
            theirs = PreparedMessage(payload, isBinary=binary, applyMask=False, doNotCompress=True).payloadHybi
            if frame(opcode, payload) != theirs:
                kind = "binary" if binary else "text"
                return f"the frame of a {size}-byte {kind} message differs from autobahn's"
    return None


def _buffer_failure() -> str | None:
    """Do ``dataBuffer``, ``offset`` and ``_tempDataLen`` still count what Twisted's own write()/doWrite() hold?"""
    from twisted.internet.abstract import FileDescriptor

    class Probe(FileDescriptor):
        connected = True
        room = 0  # bytes the pretend socket takes on the next doWrite()

        def startWriting(self) -> None:
            pass

        def stopWriting(self) -> None:
            pass

        def writeSomeData(self, data: bytes) -> int:
            taken = min(len(data), self.room)
            self.room -= taken
            return taken

    probe = Probe(reactor=cast(Any, object()))  # never used: the probe neither reads nor schedules
    # (bytes written, bytes the socket then takes, bytes Twisted must still hold)
    for data, room, expected in ((b"a" * 100, 0, 100), (b"", 30, 70), (b"b" * 5, 0, 75), (b"", 1 << 20, 0)):
        if data:
            probe.write(data)
        if room:
            probe.room = room
            probe.doWrite()  # type: ignore[no-untyped-call]
        if held(probe) != expected:
            return f"Twisted's buffer fields count {held(probe)} bytes where its write()/doWrite() hold {expected}"
    return None


#: The process's seam (its check runs once, on first use).
SEAM = Seam()
