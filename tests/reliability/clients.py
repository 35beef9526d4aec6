"""What the reliability tests drive and observe: STOMP clients over real sockets, a publisher in another
process, a server process's memory and file descriptors, and the channel-layer groups in Redis.

- :class:`StompClient`: a STOMP 1.2 client on python ``websockets`` that keeps reading and records what it gets.
- :class:`StalledClient`: a raw TCP socket that does the WebSocket handshake by hand, subscribes, then never
  reads again (the slow consumer a server must survive).
- :func:`publish`: ``apush`` of numbered messages from a separate Django process, at a given rate.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Iterable

import websockets

from django_stomp_push.stomp import Frame, FrameParser, Limits
from tests.servers import DaphneServer, Project, RedisServer

HUB_CHANNEL_PREFIX = b"stomp_push.hub."
GROUP_KEY_PREFIX = b"asgi:group:stomp_push."


def stomp_frame(command: str, headers: dict[str, str] | None = None, body: str = "") -> str:
    lines = [command, *(f"{k}:{v}" for k, v in (headers or {}).items())]
    return "\n".join(lines) + "\n\n" + body + "\x00"


class Closed(Exception):
    """The server closed the connection (``error`` is the ERROR frame that came before, if any)."""

    def __init__(self, code: int | None, error: Frame | None) -> None:
        super().__init__(f"closed with {code}: {error.headers.get('message') if error else 'no ERROR frame'}")
        self.code = code
        self.error = error


class StompClient:
    """One STOMP 1.2 connection over ``websockets``; frames in, frames out."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.parser = FrameParser(Limits(max_frame_size=16 * 1024 * 1024, max_header_count=1000))
        self.pending: deque[Frame] = deque()
        self.error: Frame | None = None
        self._receipts = 0

    @classmethod
    async def open(
        cls,
        server: DaphneServer,
        session_key: str | None,
        *,
        heartbeat: str = "0,0",
        subscribe: Iterable[str] = (),
        timeout: float = 10.0,
    ) -> StompClient:
        """WebSocket + CONNECT (+ SUBSCRIBE with a receipt per destination); returns once all are confirmed."""
        headers = {"Cookie": f"sessionid={session_key}"} if session_key else {}
        ws = await websockets.connect(
            server.ws_url,
            subprotocols=["v12.stomp"],
            origin=server.http_url,
            additional_headers=headers,
            open_timeout=timeout,
            ping_interval=None,
            max_size=None,
        )
        client = cls(ws)
        try:
            await ws.send(
                stomp_frame("CONNECT", {"accept-version": "1.2", "host": "127.0.0.1", "heart-beat": heartbeat})
            )
            connected = await client.frame(timeout)
            assert connected.command == "CONNECTED", connected
            for index, destination in enumerate(subscribe):
                await client.subscribe(destination, f"s{index}", timeout)
        except BaseException:
            await client.abort()
            raise
        return client

    async def subscribe(self, destination: str, sub_id: str, timeout: float = 10.0) -> None:
        self._receipts += 1
        receipt = f"r{self._receipts}"
        await self.ws.send(stomp_frame("SUBSCRIBE", {"id": sub_id, "destination": destination, "receipt": receipt}))
        held: list[Frame] = []  # MESSAGEs of earlier subscriptions may come first: keep them for the caller

        async def until_receipt() -> Frame:
            while (frame := await self._next()).command == "MESSAGE":
                held.append(frame)
            return frame

        frame = await asyncio.wait_for(until_receipt(), timeout)
        assert frame.command == "RECEIPT" and frame.headers.get("receipt-id") == receipt, frame
        self.pending.extendleft(reversed(held))

    async def _next(self) -> Frame:
        # Cancellation-safe (websockets' recv() is): parsed frames wait in self.pending.
        while not self.pending:
            try:
                data = await self.ws.recv(decode=False)
            except websockets.ConnectionClosed:
                raise Closed(self.ws.close_code, self.error) from None
            self.pending.extend(self.parser.feed(data))
        frame = self.pending.popleft()
        if frame.command == "ERROR":
            self.error = frame
        return frame

    async def frame(self, timeout: float) -> Frame:
        """The next frame, heart-beats skipped (:attr:`heartbeats` counts them); :class:`Closed` at the close."""
        return await asyncio.wait_for(self._next(), timeout)

    @property
    def heartbeats(self) -> int:
        return self.parser.heartbeats

    async def messages(self, count: int, timeout: float) -> list[str]:
        """The bodies of the next ``count`` MESSAGE frames, within ``timeout`` seconds in all."""
        bodies: list[str] = []

        async def collect() -> None:
            while len(bodies) < count:
                frame = await self._next()
                assert frame.command == "MESSAGE", frame
                bodies.append(frame.body.decode())

        await asyncio.wait_for(collect(), timeout)
        return bodies

    async def quiet(self, seconds: float) -> list[Frame]:
        """Read for ``seconds``; return the frames other than heart-beats that came meanwhile."""
        frames: list[Frame] = []

        async def collect() -> None:
            while True:
                frames.append(await self._next())

        try:
            await asyncio.wait_for(collect(), seconds)
        except asyncio.TimeoutError:
            pass
        return frames

    async def closed(self, timeout: float) -> Closed:
        """Read until the server closes the connection; return how (ERROR frame and close code)."""
        try:
            await self.quiet(timeout)
        except Closed as closed:
            return closed
        raise AssertionError(f"still open after {timeout}s")

    async def close(self) -> None:
        await self.ws.close()

    async def abort(self) -> None:
        """Drop the TCP connection without a WebSocket closing handshake (a crashed client)."""
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()
        await self.ws.close()


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One client-to-server WebSocket frame (FIN set, masked as RFC 6455 requires of clients)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    return header + mask + masked


class RawWebSocket:
    """A WebSocket client on a plain socket that does the handshake and the framing by hand, for what a client
    library would not send: one byte per message, a flood written without reading, a client that never reads."""

    def __init__(self, server: DaphneServer, session_key: str | None = None, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect(), so the window advertised to the server stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        cookie = f"Cookie: sessionid={session_key}\r\n" if session_key else ""
        request = (
            "GET /ws/stomp/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: v12.stomp\r\n"
            f"Origin: {server.http_url}\r\n{cookie}\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def send_text(self, text: str) -> None:
        self.sock.sendall(masked_frame(text.encode()))

    def send_messages(self, payloads: Iterable[bytes]) -> None:
        """Each payload as its own text message, all written at once (the server reads them at its pace)."""
        self.sock.sendall(b"".join(masked_frame(payload) for payload in payloads))

    def drain(self, timeout: float) -> tuple[int, str]:
        """Read everything left until the server ends the TCP connection; (bytes read, "eof" or "reset")."""
        self.sock.settimeout(timeout)
        total = 0
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    return total, "eof"
                total += len(chunk)
        except ConnectionResetError:
            return total, "reset"

    def close(self) -> None:
        self.sock.close()


class StalledClient(RawWebSocket):
    """A subscriber that stops reading: a small receive buffer, CONNECT and SUBSCRIBE, then never ``recv`` again."""

    def __init__(self, server: DaphneServer, session_key: str, rcvbuf: int = 4096) -> None:
        super().__init__(server, session_key, rcvbuf)

    def connect_and_subscribe(self, destination: str) -> None:
        """CONNECT and SUBSCRIBE with a receipt, reading until the RECEIPT: after this, no more reads."""
        self.send_text(stomp_frame("CONNECT", {"accept-version": "1.2", "host": "127.0.0.1", "heart-beat": "0,0"}))
        self.send_text(stomp_frame("SUBSCRIBE", {"id": "0", "destination": destination, "receipt": "subscribed"}))
        self._read_until(b"receipt-id:subscribed")


# -- processes ----------------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_connections(pid: int) -> Counter[int]:
    """The established TCP connections of ``pid``, counted by remote port (from /proc, IPv4)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    peers: Counter[int] = Counter()
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                peers[int(fields[2].split(":")[1], 16)] += 1
    return peers


async def wait_for_log(server: DaphneServer, pattern: str, timeout: float, since: int = 0) -> re.Match[str]:
    """Wait until the server's log (from character ``since``) matches ``pattern``."""
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, server.log()[since:])
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} in the server log after {timeout}s:\n{server.log()[since:][-3000:]}")
        await asyncio.sleep(0.05)


# Pushes ``count`` numbered messages ("<seq>:<padding>") to one destination at ``rate`` per second (0: no pause)
# from this separate process, and prints how long that took.
PUBLISHER = """
import asyncio, json, sys, time
from django_stomp_push import apush

destination, count, rate, size = {destination!r}, {count}, {rate}, {size}

async def main():
    started = time.monotonic()
    for seq in range(count):
        body = str(seq) + ":"
        await apush(destination, body + "x" * max(0, size - len(body)))
        if rate:
            await asyncio.sleep(max(0.0, started + (seq + 1) / rate - time.monotonic()))
    print(json.dumps({{"seconds": time.monotonic() - started}}))

asyncio.run(main())
"""


def publish(project: Project, destination: str, count: int, rate: float = 0, size: int = 0) -> dict:
    """Run the publisher in another process; returns its report. Raises if it failed."""
    code = PUBLISHER.format(destination=destination, count=count, rate=rate, size=size)
    result = project.python(code, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def sequence(bodies: Iterable[str]) -> list[int]:
    return [int(body.partition(":")[0]) for body in bodies]


# -- Redis ----------------------------------------------------------------------------------------------------


def stomp_groups(redis_server: RedisServer) -> dict[str, list[bytes]]:
    """Every django-stomp-push channel-layer group in Redis, with its members (group name without the prefix)."""
    import redis

    client = redis.Redis(port=redis_server.port)
    return {
        key[len(GROUP_KEY_PREFIX) :].decode(): client.zrange(key, 0, -1)
        for key in client.scan_iter(match=GROUP_KEY_PREFIX + b"*")
    }


def group_kinds(groups: dict[str, list[bytes]]) -> dict[str, int]:
    """How many groups of each kind: "d" (destination), "u" (user), "s" (session), "hubs"."""
    kinds: dict[str, int] = {}
    for name in groups:
        kind = name.split(".", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def queued(redis_server: RedisServer, channel: bytes) -> int:
    """How many messages wait in Redis for ``channel`` (a hub channel name as found in a group)."""
    import redis

    # channels-redis keeps one queue per process, under its prefix ("asgi", no separator) and the channel name
    # up to its "!".
    return redis.Redis(port=redis_server.port).zcard(b"asgi" + channel.partition(b"!")[0] + b"!")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far, in seconds (from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
