"""Drive ``stompjs_client.mjs`` (a real @stomp/stompjs 7 client on Node's ``ws``) from a test.

The script prints what the client observes as JSON lines; a reader thread queues them and :meth:`expect`
waits, with a timeout, for the next event of a kind. Commands go to the script's stdin.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import REPO, DaphneServer

SCRIPT = REPO / "tests" / "interop" / "stompjs_client.mjs"


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (REPO / "node_modules" / "@stomp" / "stompjs").is_dir() or not (REPO / "node_modules" / "ws").is_dir():
        pytest.skip("@stomp/stompjs and ws are not installed (run `npm ci` at the repository root)")
    return node


class StompJsClient:
    """One Node process running one @stomp/stompjs Client."""

    def __init__(
        self,
        server: DaphneServer,
        session_key: str,
        heartbeat: tuple[int, int] = (0, 0),
        versions: tuple[str, ...] | None = None,
        origin: str | None = None,
    ) -> None:
        options = {
            "versions": list(versions) if versions else None,
            "url": server.ws_url,
            "cookie": f"sessionid={session_key}",
            "origin": origin or server.http_url,
            "heartbeatOutgoing": heartbeat[0],
            "heartbeatIncoming": heartbeat[1],
            "disconnectReceipt": "bye",
        }
        self.process = subprocess.Popen(
            [node_binary(), str(SCRIPT), json.dumps(options)],
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        #: Every event seen so far, in order (also the ones :meth:`expect` skipped).
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line}
            event["received_at"] = time.time()
            self.seen.append(event)
            self.events.put(event)
        self.events.put({"event": "exited"})

    def command(self, cmd: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.process.stdin.flush()

    def expect(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The next event ``kind`` whose fields equal ``match``; fails on timeout, exit or a client error."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = self.events.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(f"no {kind!r} {match or ''} within {timeout}s; saw {self.kinds()}") from None
            if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
            if event["event"] in ("fatal", "exited", "garbage"):
                raise AssertionError(f"stompjs client failed while waiting for {kind!r}: {event}\n{self.stderr()}")

    def drain(self) -> list[dict[str, Any]]:
        """Every queued event, without waiting."""
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.seen]

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.command("exit")
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def stompjs() -> Iterator:
    """Start @stomp/stompjs clients (``stompjs(server, session_key, heartbeat=(out, in), versions=("1.1",))``).

    Every client is stopped after the test.
    """
    clients: list[StompJsClient] = []

    def start(server: DaphneServer, session_key: str, **options: Any) -> StompJsClient:
        client = StompJsClient(server, session_key, **options)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.stop()
