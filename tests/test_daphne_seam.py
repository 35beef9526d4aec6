"""The daphne fast path reads below the public interfaces of daphne, Twisted and autobahn through one seam
(django_stomp_push.daphne.seam). An upgrade of any of them must fail here, naming the library and its version,
rather than slow pushes down or corrupt frames in production; and when the seam's check fails at run time, the
fallback (the plain ASGI send) delivers the same frames and still bounds what a client that stops reading costs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import string
import time

import pytest
import websockets
from autobahn.websocket.protocol import TrafficStats
from twisted.internet import main
from twisted.internet.abstract import FileDescriptor
from websockets.frames import Frame, Opcode

from django_stomp_push.daphne import seam
from django_stomp_push.daphne.seam import BINARY, TEXT, Seam, frame, unverified_versions
from django_stomp_push.daphne.transport import WriteBufferWatch
from tests.servers import DEMO_PASSWORDS, DaphneServer, free_port

FAST_PATH_ON = "daphne fast path on"
FAST_PATH_OFF = "daphne fast path off"

# -- the verified table and the self-check ----------------------------------------------------------------


def test_the_installed_daphne_twisted_and_autobahn_are_versions_the_seam_was_verified_with():
    unverified = unverified_versions()
    assert not unverified, (
        f"The daphne fast path is not verified with {', '.join(unverified)}: in production it turns itself off "
        "(each delivery then costs up to four times the server CPU). Run tests/test_daphne_seam.py, "
        "tests/test_daphne_close.py, tests/reliability/test_daphne_frames.py and test_slow_consumer.py with "
        "these versions; if they pass, add their release series to VERIFIED in django_stomp_push/daphne/seam.py."
    )


def test_the_seam_self_check_passes_with_the_installed_versions():
    failure = Seam.static_failure()
    assert failure is None, f"the daphne fast path's self-check fails: {failure}"


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 65_537, 1_000_000])
@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_frames_are_the_rfc_6455_encoding_of_one_final_unmasked_message(size, opcode):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = Frame(Opcode.TEXT if opcode == TEXT else Opcode.BINARY, payload).serialize(mask=False, extensions=[])
    assert frame(opcode, payload) == expected


def test_a_version_outside_the_table_fails_the_check_naming_it(monkeypatch):
    monkeypatch.setitem(seam.VERIFIED, "Twisted", ("0.0",))
    failure = Seam.static_failure()
    assert failure is not None and f"Twisted {seam.installed_versions()['Twisted']} (verified: 0.0)" in failure


def test_a_frame_unlike_autobahns_fails_the_check(monkeypatch):
    monkeypatch.setattr(seam, "frame", lambda opcode, payload: bytes((opcode, len(payload) % 126)) + payload)
    assert Seam.static_failure() == "the frame of a 126-byte text message differs from autobahn's"


def test_buffer_fields_that_no_longer_count_twisteds_buffer_fail_the_check(monkeypatch):
    monkeypatch.setattr(seam, "held", lambda transport: len(transport.dataBuffer) + transport._tempDataLen)
    assert Seam.static_failure() == "Twisted's buffer fields count 100 bytes where its write()/doWrite() hold 70"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def seam_log():
    """What the seam logs (on the "django_stomp_push" logger, whatever the logging settings)."""
    stomp_logger, records = logging.getLogger("django_stomp_push"), Records()
    level, stomp_logger.level = stomp_logger.level, logging.INFO
    stomp_logger.addHandler(records)
    yield records
    stomp_logger.removeHandler(records)
    stomp_logger.level = level


def test_a_failed_check_logs_one_warning_naming_the_versions_and_turns_the_fast_path_off(monkeypatch, seam_log):
    monkeypatch.setitem(seam.VERIFIED, "autobahn", ("0.0",))
    checked = Seam()
    assert [checked.verify(object()) for _ in range(3)] == [False, False, False]
    assert [r.levelname for r in seam_log.records] == ["WARNING"]
    line = seam_log.records[0].getMessage()
    versions = seam.installed_versions()
    assert FAST_PATH_OFF in line and "plain ASGI send" in line
    assert all(f"{name} {version}" in line for name, version in versions.items())


def test_a_surprise_below_the_public_interfaces_is_a_failed_check(seam_log):
    checked = Seam()
    assert not checked.verify(object())  # no state, no transport: the live check raises
    assert "the self-check raised AttributeError" in seam_log.records[0].getMessage()


# -- the fallback's write-buffer watch, on Twisted's own FileDescriptor ------------------------------------


class Reactor:
    def addWriter(self, _):
        pass

    removeWriter = removeReader = addReader = addWriter


class Connection(FileDescriptor):
    """Twisted's buffering (write, doWrite, producers, loseConnection) over a pretend socket."""

    connected = True
    room = 0

    def __init__(self):
        super().__init__(reactor=Reactor())

    def writeSomeData(self, data):
        taken = min(len(data), self.room)
        self.room -= taken
        return taken

    def flush(self, room=None):
        """One doWrite() if the socket takes ``room`` bytes; else as many as it takes to write everything."""
        self.room = room if room is not None else 1 << 30
        result = self.doWrite()
        while room is None and seam.held(self):
            result = self.doWrite()
        return result


class Protocol:
    """autobahn's side: what it hands to the transport, counted as autobahn's ``sendData`` counts it."""

    def __init__(self):
        self.transport = Connection()
        self.trafficStats = TrafficStats()

    def send(self, size):
        self.transport.write(b"x" * size)
        self.trafficStats.outgoingOctetsWireLevel += size


def test_the_watch_bounds_what_twisted_holds_past_its_buffer_size_and_forgets_it_once_the_buffer_is_empty():
    protocol = Protocol()
    watch = WriteBufferWatch.attach(protocol)
    connection = protocol.transport
    assert connection.producer is watch and connection.bufferSize == 65536
    held = []
    for _ in range(40):
        protocol.send(10_000)
        connection.flush(room=3_000)  # the client reads less than is pushed
        held.append((seam.held(connection), watch.held()))
    assert all(actual <= 65_536 for actual, bound in held if bound == 0)  # under Twisted's bufferSize: not counted
    assert all(actual <= bound for actual, bound in held if bound)  # past it: bounded from above
    assert held[-1][0] > 250_000  # the buffer grew, and the bound with it
    connection.flush()
    assert seam.held(connection) == watch.held() == 0


def test_a_connection_closing_while_the_watch_is_paused_still_closes():
    protocol = Protocol()
    watch = WriteBufferWatch.attach(protocol)
    connection = protocol.transport
    protocol.send(100_000)
    assert watch.held() >= 100_000
    connection.loseConnection()
    connection.flush()  # the buffer empties: Twisted resumes the producer, which lets the close go on
    assert connection.producer is None
    assert connection.flush() is main.CONNECTION_DONE


# -- real daphne processes ----------------------------------------------------------------------------------

#: The verified table of the daphne process is made to miss the installed Twisted: the seam's check fails there.
FALLBACK_LAUNCHER = """
from daphne.cli import CommandLineInterface  # installs daphne's asyncio reactor first
from django_stomp_push.daphne import seam
seam.VERIFIED["Twisted"] = ("0.0",)
CommandLineInterface.entrypoint()
"""


class FallbackDaphne(DaphneServer):
    """A daphne of the testproject on which the seam's check fails (started as tests.servers starts daphne)."""

    def command(self) -> list[str]:
        return ["-c", FALLBACK_LAUNCHER, "-b", "127.0.0.1", "-p", str(self.port)]


@pytest.fixture(params=["fast path", "fallback"])
def server(request, redis_server, project_factory, daphne_factory):
    # Every byte must arrive: room for the whole burst (7 MB, published faster than one client reads it), so that
    # the slow-consumer limit (tested on its own below) does not end the connection first.
    roomy = {"STOMP_PUSH_JSON": json.dumps({"OUTBOUND_BUFFER_SIZE": 32 * 1024 * 1024})}
    project = project_factory(redis_server.url, **roomy)
    if request.param == "fast path":
        yield daphne_factory(project)
        return
    fallback = FallbackDaphne(project, free_port(), {}).start()
    try:
        yield fallback
    finally:
        fallback.stop()


#: Body sizes: 0, 1, 125, 126, 65,535, 65,536 and 200,000 bytes, and sweeps whose MESSAGE frames (about 100
#: bytes of headers, and a NUL) cross every RFC 6455 length boundary: 125/126 and 65,535/65,536 bytes of payload.
SIZES = [0, 1, 125, 126, 65_535, 65_536, 200_000, *range(0, 40), *range(65_400, 65_450)]
TEXT_PATTERN = string.ascii_letters + string.digits + "é€"  # 1-, 2- and 3-byte characters
BINARY_PATTERN = bytes(range(256))


def text_body(size: int) -> str:
    return (TEXT_PATTERN * (size // len(TEXT_PATTERN) + 1))[:size]


def binary_body(size: int) -> bytes:
    return (BINARY_PATTERN * (size // 256 + 1))[:size]


# The publisher is another process (the repository is on its path): pushes go through Redis to the server.
PUBLISHER = """
from django_stomp_push.push import push
from tests.test_daphne_seam import SIZES, binary_body, text_body
for size in SIZES:
    push("/topic/seam", text_body(size))
for size in SIZES:
    push("/topic/seam", binary_body(size))
"""


async def subscriber(server: DaphneServer, session_key: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        server.ws_url,
        subprotocols=["v12.stomp"],
        origin=server.http_url,
        additional_headers={"Cookie": f"sessionid={session_key}"},
        max_size=None,
    )
    connect = "CONNECT\naccept-version:1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n\x00"
    await ws.send(connect)
    assert (await ws.recv()).startswith("CONNECTED")
    await ws.send("SUBSCRIBE\nid:s0\ndestination:/topic/seam\nreceipt:r\n\n\x00")
    assert (await ws.recv()).startswith("RECEIPT")
    return ws


def body_of(message: str | bytes) -> str | bytes:
    head, blank, body = message.partition("\n\n" if isinstance(message, str) else b"\n\n")
    assert head.startswith("MESSAGE\n" if isinstance(message, str) else b"MESSAGE\n") and blank
    assert body.endswith("\x00" if isinstance(message, str) else b"\x00")
    return body[:-1]


@pytest.mark.redis
def test_pushes_of_every_length_class_arrive_intact(server):
    alice = server.login("alice", DEMO_PASSWORDS["alice"])

    async def scenario():
        ws = await subscriber(server, alice.session_key)
        publisher = asyncio.create_task(asyncio.to_thread(server.project.python, PUBLISHER, 120))
        received = [await asyncio.wait_for(ws.recv(), 30) for _ in range(2 * len(SIZES))]
        result = await publisher
        assert result.returncode == 0, result.stderr[-3000:]
        await ws.close()
        return received

    received = asyncio.run(scenario())
    for size, message in zip(SIZES, received[: len(SIZES)], strict=True):
        assert isinstance(message, str), f"a {size}-character body did not come as a text message"
        assert body_of(message) == text_body(size), f"a {size}-character body did not arrive intact"
    for size, message in zip(SIZES, received[len(SIZES) :], strict=True):
        assert isinstance(message, bytes), f"a {size}-byte body did not come as a binary message"
        assert body_of(message) == binary_body(size), f"a {size}-byte body did not arrive intact"
    lengths = {len(m.encode() if isinstance(m, str) else m) for m in received}
    for boundary in (125, 126, 65_535, 65_536):
        assert boundary in lengths, f"no message had a payload of exactly {boundary} bytes: widen SIZES"
    log = server.log()
    if isinstance(server, FallbackDaphne):
        assert log.count(FAST_PATH_OFF) == 1 and FAST_PATH_ON not in log
        assert f"Twisted {seam.installed_versions()['Twisted']}" in log
    else:
        assert FAST_PATH_ON in log and FAST_PATH_OFF not in log, f"the seam's check failed in daphne:\n{log[-3000:]}"


@pytest.mark.redis
def test_a_client_that_stops_reading_is_closed_on_the_fallback_too(redis_server, project_factory):
    from tests.reliability.clients import StalledClient, publish

    project = project_factory(redis_server.url)
    server = FallbackDaphne(project, free_port(), {}).start()
    try:
        alice = server.login("alice", DEMO_PASSWORDS["alice"])
        stalled = StalledClient(server, alice.session_key)
        stalled.connect_and_subscribe("/topic/firehose")
        publish(project, "/topic/firehose", 200, 0, 32 * 1024)  # 6.4 MiB, 12 times the 512 KiB outbound limit
        deadline = time.monotonic() + 10
        while "closing slow consumer" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        stalled.close()
        log = server.log()
        assert "closing slow consumer" in log and "bytes queued" in log, log[-3000:]
        assert FAST_PATH_OFF in log
    finally:
        server.stop()
