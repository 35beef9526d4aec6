"""The outbound buffer on its own, over a transport that records what it is asked to do."""

from __future__ import annotations

import asyncio

import pytest

from django_stomp_push.core.outbound import Outbound


class RecordingTransport:
    """A transport that takes frames synchronously while ``ready``, and can hold or refuse them."""

    def __init__(self) -> None:
        self.ready = True  # send_now takes frames
        self.written: list[object] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.refuse = False
        self.held = 0

    async def accept(self, subprotocol):
        self.written.append(("accept", subprotocol))

    async def send(self, frame):
        await self.gate.wait()
        if self.refuse:
            raise ValueError("message too big")
        self.written.append(frame)

    def send_now(self, frame) -> bool:
        if not self.ready:
            return False
        self.written.append(frame)
        return True

    async def close(self, code, reason):
        self.written.append(("close", code, reason))

    def backlog(self) -> int:
        return self.held

    def pause_reading(self) -> bool:
        return False

    def resume_reading(self) -> None:
        pass


@pytest.fixture
def slow():
    return []


async def outbound(transport, slow, limit=100, send_timeout=10.0) -> Outbound:
    out = Outbound(transport, limit, send_timeout, slow.append, "test")
    out.accept("v12.stomp")
    await asyncio.sleep(0)
    return out


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_frame_with_nothing_ahead_of_it_is_written_at_once(slow):
    transport = RecordingTransport()
    out = await outbound(transport, slow)
    out.frame("a")
    assert transport.written == [("accept", "v12.stomp"), "a"]  # no task wake-up needed
    await out.stop()


async def test_frames_keep_their_order_when_the_transport_cannot_take_them_now(slow):
    transport = RecordingTransport()
    out = await outbound(transport, slow)
    transport.ready = False
    out.frame("a")
    transport.ready = True
    out.frame("b")  # "a" waits: "b" must not overtake it
    await settle()
    assert transport.written[1:] == ["a", "b"]
    await out.stop()


async def test_a_client_with_more_than_the_limit_waiting_ahead_is_a_slow_consumer(slow):
    transport = RecordingTransport()
    out = await outbound(transport, slow, limit=100)
    transport.ready = False
    transport.gate.clear()  # the writer is stuck on the first frame
    for _ in range(3):
        out.frame("x" * 40)
    assert slow == ["more than 100 bytes queued"]
    await out.stop()


async def test_one_frame_larger_than_the_limit_is_sent_to_a_client_that_read_everything(slow):
    transport = RecordingTransport()
    out = await outbound(transport, slow, limit=100)
    out.frame("x" * 500)
    assert slow == [] and transport.written[-1] == "x" * 500
    await out.stop()


async def test_what_the_transport_still_holds_counts_against_the_limit(slow):
    transport = RecordingTransport()
    out = await outbound(transport, slow, limit=100)
    transport.held = 1000  # sampled every 8th frame
    for _ in range(8):
        out.frame("y")
    assert slow == ["more than 100 bytes queued"]
    await out.stop()


async def test_close_writes_the_error_after_what_is_queued_then_closes_and_takes_nothing_more(slow):
    transport = RecordingTransport()
    out = await outbound(transport, slow)
    transport.ready = False
    out.frame("a")
    out.close(1008, "bye", "ERROR\n\n\x00")
    out.frame("after")
    await settle()
    assert transport.written[1:] == ["a", "ERROR\n\n\x00", ("close", 1008, "bye")]
    await out.stop()


async def test_a_frame_the_transport_refuses_closes_the_connection_and_releases_its_bytes(slow):
    transport = RecordingTransport()
    out = await outbound(transport, slow)
    transport.ready, transport.refuse = False, True
    out.frame("z" * 50)
    await settle()
    assert transport.written[-1] == ("close", 1011, "send failed")
    assert out.closed and out.idle_for(out.loop.time()) >= 0
    out.frame("later")  # a closed connection takes nothing
    assert "later" not in transport.written
    await out.stop()


async def test_a_send_that_takes_longer_than_the_send_timeout_is_stuck(slow):
    transport = RecordingTransport()
    out = await outbound(transport, slow, send_timeout=0.05)
    transport.ready = False
    transport.gate.clear()
    out.frame("a")
    await settle()
    now = out.loop.time()
    assert not out.stuck(now) and out.stuck(now + 0.1)
    await out.stop()
