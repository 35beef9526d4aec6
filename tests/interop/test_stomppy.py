"""stomp.py 9 over WebSocket (``stomp.WSStompConnection``, websocket-client under it) against real daphne servers.

How stomp.py passes the handshake headers: ``WSStompConnection(header=...)`` hands the dict to
``websocket.create_connection(header=...)`` as *extra* headers. websocket-client always adds its own
``Origin: http://<host>:<port>`` (stomp.py forwards neither ``origin=`` nor ``suppress_origin=``), so an ``Origin``
in ``header`` goes out twice; daphne (autobahn) joins the two into one invalid value and answers 400. The faithful
set-up is therefore ``header={"Cookie": "sessionid=..."}`` and websocket-client's own Origin, which is exactly the
page's origin when the WebSocket URL has the page's host and port, as it does here.

stomp.py reports a server close only as ``on_disconnected()``, without the code: the tests read the close frame
one layer down, from the websocket-client socket stomp.py itself reads from.
"""

from __future__ import annotations

import json
import queue
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stomp
import websocket

pytestmark = [pytest.mark.interop, pytest.mark.redis, pytest.mark.slow]


class Recorder(stomp.ConnectionListener):
    """Queues what stomp.py reports to its listeners (called on stomp.py's receiver and heart-beat threads)."""

    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []

    def _put(self, kind: str, frame: Any = None) -> None:
        event = {"event": kind, "at": time.time()}
        if frame is not None:
            event.update(headers=dict(frame.headers), body=frame.body)
        self.seen.append(event)
        self.events.put(event)

    def on_connected(self, frame):
        self._put("connected", frame)

    def on_message(self, frame):
        self._put("message", frame)

    def on_receipt(self, frame):
        self._put("receipt", frame)

    def on_error(self, frame):
        self._put("error", frame)

    def on_disconnected(self):
        self._put("disconnected")

    def on_heartbeat(self):
        self._put("heartbeat-received")

    def on_heartbeat_timeout(self):
        self._put("heartbeat-timeout")

    def on_send(self, frame):
        if frame.cmd is None:  # stomp.py's heart-beat is an empty frame
            self._put("heartbeat-sent")

    def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind!r} within {timeout}s; saw {self.kinds()}") from None
            if event["event"] == kind:
                return event

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.seen]


@pytest.fixture
def close_frames(monkeypatch) -> list[tuple[int, str]]:
    """(code, reason) of every WebSocket close frame that stomp.py's transport reads from the server."""
    frames: list[tuple[int, str]] = []
    real_create_connection = websocket.create_connection

    def create_connection(*args, **kwargs):
        sock = real_create_connection(*args, **kwargs)
        recv_data = sock.recv_data

        def spy(control_frame: bool = False):
            opcode, data = recv_data(control_frame)
            if opcode == websocket.ABNF.OPCODE_CLOSE and len(data) >= 2:
                frames.append((struct.unpack("!H", data[:2])[0], data[2:].decode()))
            return opcode, data

        sock.recv_data = spy
        return sock

    monkeypatch.setattr(websocket, "create_connection", create_connection)
    return frames


@pytest.fixture
def stomppy(cluster, close_frames) -> Iterator:
    """Connect stomp.py as a signed-in user: ``stomppy("alice", heartbeats=(ms, ms))`` -> (session, conn, recorder)."""
    opened: list[stomp.WSStompConnection] = []

    def open_connection(username: str = "alice", heartbeats: tuple[int, int] = (0, 0)):
        session = cluster.login(username)
        conn = stomp.WSStompConnection(
            [("127.0.0.1", cluster.a.port)],
            ws_path="/ws/stomp/",
            header={"Cookie": f"sessionid={session.session_key}"},  # Origin: websocket-client's (module docstring)
            heartbeats=heartbeats,
            reconnect_attempts_max=1,
            timeout=10,  # seconds a socket read may block; heart-beats or the test's steps come sooner
        )
        recorder = Recorder()
        conn.set_listener("recorder", recorder)
        opened.append(conn)
        conn.connect(wait=True)
        return session, conn, recorder

    yield open_connection
    for conn in opened:
        if conn.is_connected():
            conn.disconnect()
        deadline = time.monotonic() + 5
        while conn.transport.socket is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if conn.transport.socket is not None:
            conn.transport.disconnect_socket()


def test_connects_as_the_signed_in_user_with_the_session_cookie(stomppy):
    _, _, recorder = stomppy("alice")
    headers = recorder.expect("connected")["headers"]
    assert headers["version"] == "1.2"
    assert headers["user-name"] == "alice"
    assert headers["server"] == "django-stomp-push"
    assert int(headers["session-expires"]) > time.time() * 1000


def test_push_from_another_process_reaches_the_subscriber_through_redis(cluster, stomppy):
    _, conn, recorder = stomppy("alice")
    conn.subscribe("/topic/interop.stomppy", id="prices", receipt="subscribed")
    assert recorder.expect("receipt")["headers"]["receipt-id"] == "subscribed"

    body = {"symbol": "ACME", "price": 101.5, "note": "café"}
    cluster.python(
        "from django_stomp_push import push\n"
        f"push('/topic/interop.stomppy', {body!r}, headers={{'x-note': 'at 12:30', 'x-source': 'cron job'}})"
    )
    message = recorder.expect("message")
    assert json.loads(message["body"]) == body
    headers = message["headers"]
    assert headers["destination"] == "/topic/interop.stomppy"
    assert headers["subscription"] == "prices"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(message["body"].encode())
    assert headers["x-note"] == "at 12:30"  # escaped as 12\c30 on the wire, un-escaped by stomp.py
    assert headers["x-source"] == "cron job"


def test_send_to_app_echo_replies_on_user_queue_reply_with_a_receipt(stomppy):
    _, conn, recorder = stomppy("alice")
    conn.subscribe("/user/queue/reply", id="reply", receipt="subscribed")
    recorder.expect("receipt")

    conn.send("/app/echo", "hello from stomp.py", receipt="sent")
    reply = recorder.expect("message")
    assert recorder.expect("receipt")["headers"]["receipt-id"] == "sent"
    assert reply["headers"]["destination"] == "/user/queue/reply"
    echoed = json.loads(reply["body"])
    assert (echoed["echo"], echoed["user"]) == ("hello from stomp.py", "alice")


def test_heartbeats_keep_an_idle_connection_open_for_several_periods(cluster, stomppy):
    period = cluster.heartbeat_ms
    _, conn, recorder = stomppy("alice", heartbeats=(period, period))
    recorder.expect("connected")
    recorder.drain()

    time.sleep(5.5)  # the server closes after 2 silent periods, stomp.py after 1.5
    kinds = [e["event"] for e in recorder.drain()]
    assert "disconnected" not in kinds and "heartbeat-timeout" not in kinds, kinds
    assert kinds.count("heartbeat-sent") >= 4, kinds
    assert kinds.count("heartbeat-received") >= 4, kinds
    assert conn.is_connected()

    conn.subscribe("/user/queue/reply", id="reply")
    conn.send("/app/echo", "still here")
    assert json.loads(recorder.expect("message")["body"])["echo"] == "still here"


def test_disconnect_with_receipt_closes_normally(stomppy):
    _, conn, recorder = stomppy("alice")
    recorder.expect("connected")
    conn.disconnect(receipt="bye")
    assert recorder.expect("receipt")["headers"]["receipt-id"] == "bye"
    assert "disconnected" in recorder.kinds()  # stomp.py notifies it before the receipt's listeners
    assert "error" not in recorder.kinds()
    assert not conn.is_connected()


def test_logout_on_another_server_sends_error_then_close_1008(cluster, stomppy, close_frames):
    session, conn, recorder = stomppy("alice")
    recorder.expect("connected")

    logout_at = time.time()
    session.logout()  # over HTTP on server b; stomp.py is connected to server a
    error = recorder.expect("error", timeout=5)
    disconnected = recorder.expect("disconnected", timeout=5)

    assert error["headers"]["message"] == "logged out"
    assert "log in again" in error["body"]
    assert close_frames == [(1008, "logged out")]
    latency = disconnected["at"] - logout_at
    print(f"stomp.py: logout on server b -> disconnected on server a after {latency * 1000:.0f} ms")
    assert latency < 1.0, f"disconnected {latency:.3f}s after the logout"
    assert not conn.is_connected()
