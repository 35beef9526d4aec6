"""Admission control and drain, through the consumer: refusals a client can act on (1013, 1012, retry-after)."""

from __future__ import annotations

import asyncio

import pytest

from django_stomp_push.core.admission import adrain, gate
from tests.stompclient import StompTestClient
from tests.test_consumer import connected, sign_in, stomp_settings

pytestmark = pytest.mark.django_db(transaction=True)

TRY_AGAIN_LATER, SERVICE_RESTART = 1013, 1012


class Recorder:
    """A connection that only records how it was refused: the close code, the ERROR message, the retry-after."""

    code = message = retry_after = None

    def close(self, code, message=None, detail="", receipt_id=None, headers=None, reconnect=None):
        self.code, self.message, self.retry_after = code, message, int(headers["retry-after"])


@pytest.fixture
async def key(alice, login) -> str:
    return await sign_in(alice, login)


async def test_past_the_admission_limit_a_new_connection_is_refused_with_1013_and_a_jittered_retry_after(key):
    with stomp_settings(admission_limit=2):
        waiting = [StompTestClient(key) for _ in range(2)]
        for client in waiting:
            assert await client.open()  # WebSocket open, no CONNECT yet: pending
        refused = StompTestClient(key)
        await refused.open()
        error, code = await refused.receive_error()
        assert code == TRY_AGAIN_LATER and error.headers["message"] == "server busy"
        assert error.headers["reconnect"] == "later" and 1000 <= int(error.headers["retry-after"]) <= 3000
        assert gate().refused >= 1
        for client in waiting:  # their CONNECTs are served: they stop counting as pending
            await client.send("CONNECT", {"accept-version": "1.2", "host": "testserver"})
            assert (await client.receive()).command == "CONNECTED"
        admitted = await connected(key)
        for client in (*waiting, admitted):
            await client.close()


async def test_refused_clients_get_retry_afters_that_differ():
    from django_stomp_push.core.admission import refuse

    delays = set()
    for _ in range(50):
        recorder = Recorder()
        refuse(recorder, TRY_AGAIN_LATER, "server busy", 2.0, floor=1.0)
        delays.add(recorder.retry_after)
    assert len(delays) > 40 and min(delays) >= 1000 and max(delays) <= 3000


def test_a_busy_retry_after_spreads_the_refused_over_the_time_the_pending_connections_need(monkeypatch):
    """Before the process has answered CONNECTs while refusing, a refused client retries after 1 to 3 s; once it
    has (here 4 per second), the retry-afters spread over pending / rate seconds (40 / 4 = 10 s)."""
    from django_stomp_push.core import admission

    def refusals(gate, count=60):
        delays = []
        for _ in range(count):
            refused = Recorder()
            assert not gate.admit(refused)
            assert (refused.code, refused.message) == (TRY_AGAIN_LATER, "server busy")
            delays.append(refused.retry_after)
        return delays

    now = [100.0]
    monkeypatch.setattr(admission.time, "monotonic", lambda: now[0])
    with stomp_settings(admission_limit=40, drain_on_signals=False):
        busy = admission.Gate()
        pending = [Recorder() for _ in range(40)]
        assert all(busy.admit(connection) for connection in pending)
        early = refusals(busy)
        assert min(early) >= 1000 and max(early) <= 3000 and busy.answer_rate is None

        busy.connected(pending.pop())  # the first answer starts the count
        pending.append(Recorder())
        assert busy.admit(pending[-1])
        refusals(busy, 1)  # back at the limit: refusing during this second
        for _ in range(4):
            now[0] += 0.25
            busy.connected(pending.pop())
        assert busy.answer_rate == 4.0  # 4 answers in the second after the first
        assert all(busy.admit(Recorder()) for _ in range(4))  # back at the limit: 40 pending
        late = refusals(busy)
        assert min(late) >= 1000 and 3000 < max(late) <= 10_000, late  # 40 pending / 4 per second = 10 s


async def test_a_drain_closes_every_connection_with_1012_and_a_retry_after_within_the_window(key):
    with stomp_settings(drain_window=5.0):
        subscribed = await connected(key)
        pending = StompTestClient(key)
        await pending.open()
        assert await adrain() == 2
        for client in (subscribed, pending):
            error, code = await client.receive_error()
            assert code == SERVICE_RESTART and error.headers["message"] == "server restarting"
            assert error.headers["reconnect"] == "later" and 0 <= int(error.headers["retry-after"]) <= 5000
        late = StompTestClient(key)  # while draining, a new connection is told the same at once
        await late.open()
        error, code = await late.receive_error()
        assert code == SERVICE_RESTART and error.headers["message"] == "server restarting"
    await asyncio.sleep(0)


def test_a_connection_opened_while_draining_is_sent_no_later_than_the_end_of_the_window(monkeypatch):
    """Drained at t = 100 over 10 s: a client back at t = 107 retries within the 3 s left; at t = 109.5 within 1 s
    (the least); never at t = 110 + the whole window, as a client refused late in a drain otherwise would be."""
    from django_stomp_push.core import admission

    now = [100.0]
    monkeypatch.setattr(admission.time, "monotonic", lambda: now[0])
    with stomp_settings(drain_window=10.0, drain_on_signals=False):
        draining = admission.Gate()
        assert draining.drain(10.0) == 0
        for at, most in ((100.0, 10_000), (107.0, 3_000), (109.5, 1_000), (130.0, 1_000)):
            now[0] = at
            delays = []
            for _ in range(40):
                late = Recorder()
                assert not draining.admit(late)
                assert (late.code, late.message) == (SERVICE_RESTART, "server restarting")
                delays.append(late.retry_after)
            assert 0 <= min(delays) and max(delays) <= most and max(delays) > most * 0.7, (at, delays)
