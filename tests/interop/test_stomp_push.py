"""The stomp-push helper (django_stomp_push/static/django_stomp_push/stomp-push.mjs) around real @stomp/stompjs 7
clients in Node: it stops when the server says ``reconnect: never``, waits what ``retry-after`` asks, spreads its
reconnects with full jitter, and subscribes again after a reconnect.

Against real daphne servers (the module's ``cluster``) where the server's own closes matter: a logout, a refused
cookie, a refused destination, a restart. Against a test-only STOMP server of a few lines of ``ws`` inside
stomp_push_client.mjs where the test needs a close daphne does not make on demand: ``reconnect: later`` with
``retry-after``, and connections dropped without a close frame (1006). Every time is measured in the Node process,
on one clock for the helpers and the server they connect to.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from tests.interop.stomp_push import StompPushNode, against

pytestmark = [pytest.mark.interop, pytest.mark.slow]

#: How late a timer may fire on this 2-core machine under test load, on top of the delay the helper chose.
SCHEDULING_SLACK_MS = 150
#: How early: Node (libuv) starts a timer from the event loop's cached time, taken when the loop iteration began,
#: so with 40 helpers handling their closes in one iteration a timer may fire a few ms before its delay.
TIMER_EARLY_MS = 5


@pytest.fixture
def stomp_push() -> Iterator:
    """Start stomp-push Node processes (``stomp_push({"server": {"mode": "drop"}, "instances": 20})``); every one
    is stopped after the test."""
    processes: list[StompPushNode] = []

    def start(options: dict[str, Any]) -> StompPushNode:
        process = StompPushNode(options)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


def close_of(event: dict) -> dict:
    return event["close"]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def push(cluster, destination: str, body: str) -> None:
    cluster.python(f"from django_stomp_push import push; push({destination!r}, {body!r})")


# -- reconnect: never ---------------------------------------------------------------------------------------------


@pytest.mark.redis
def test_a_logout_ends_the_session_and_the_helper_never_connects_again(cluster, stomp_push):
    session = cluster.login("alice")
    helper = {"backoff": {"base": 100, "cap": 400}}
    node = stomp_push(against(cluster.a, session.session_key, proxy=True, helper=helper))
    node.expect("connected", timeout=15)

    session.logout()  # on server b: server a hears of it through Redis
    ended = node.expect("session-ended", timeout=5)
    assert ended["reason"] == "logged out"
    assert close_of(ended) == {
        "code": 1008,
        "reason": "logged out",
        "message": "logged out",
        "reconnect": "never",
        "retryAfter": None,
    }
    time.sleep(3.0)  # more than seven times the backoff's cap: any reconnect would have come by now

    assert len(node.seen_of("tcp-connection")) == 1, "the helper reconnected after `reconnect: never`"
    assert [state["name"] for state in node.seen_of("state")] == ["connecting", "connected", "stopped"]
    assert node.seen_of("state", name="stopped")[0]["kind"] == "session-ended"
    assert node.seen_of("refused") == []


@pytest.mark.redis
def test_a_cookie_without_a_session_ends_at_the_first_attempt(cluster, stomp_push):
    node = stomp_push(against(cluster.a, "no-such-session", proxy=True, helper={"backoff": {"base": 100, "cap": 400}}))

    ended = node.expect("session-ended", timeout=15)
    assert ended["reason"] == "no valid session"
    time.sleep(2.0)
    assert len(node.seen_of("tcp-connection")) == 1
    assert node.seen_of("connected") == []


@pytest.mark.redis
def test_a_refused_destination_stops_the_helper_with_on_refused(cluster, stomp_push):
    session = cluster.login("alice")
    node = stomp_push(against(cluster.a, session.session_key, proxy=True, helper={"backoff": {"base": 100}}))
    node.expect("connected", timeout=15)

    node.command("subscribe", destination="/nowhere/at-all", id="bad")
    refused = node.expect("refused", timeout=5)
    assert refused["reason"] == "unknown destination /nowhere/at-all"
    assert close_of(refused)["reconnect"] == "never"
    assert node.seen_of("state", name="stopped")[0]["kind"] == "refused"
    time.sleep(2.0)
    assert len(node.seen_of("tcp-connection")) == 1
    assert node.seen_of("session-ended") == []


# -- reconnect: later ---------------------------------------------------------------------------------------------


def test_a_later_close_waits_the_retry_after_and_at_most_the_jitter_window_more(stomp_push):
    retry_after, jitter = 800, 300
    node = stomp_push({"server": {"mode": "later", "retryAfter": retry_after}, "helper": {"retryAfterJitter": jitter}})
    node.expect("server-connection", timeout=10, n=5)  # four waits after four `later` closes
    node.command("stop")
    node.expect("done", cmd="stop")

    closes = node.seen_of("ws-close")[:4]
    arrivals = node.seen_of("server-connection")[1:5]
    waits = node.seen_of("state", name="waiting")[:4]
    assert {close["code"] for close in closes} == {1013}
    for wait in waits:
        assert close_of(wait) == {
            "code": 1013,
            "reason": "server busy",
            "message": "server busy",
            "reconnect": "later",
            "retryAfter": retry_after,
        }
        assert retry_after <= wait["delay"] <= retry_after + jitter
    gaps = [arrival["t"] - close["t"] for close, arrival in zip(closes, arrivals, strict=True)]
    print(f"\nclose 1013 retry-after:{retry_after} -> next connection after (ms): {[round(g) for g in gaps]}")
    for gap in gaps:
        assert retry_after <= gap <= retry_after + jitter + SCHEDULING_SLACK_MS
    assert len({wait["delay"] for wait in waits}) > 1, "no jitter on top of retry-after"


# -- reconnect: now (a close without an ERROR frame) ------------------------------------------------------------


def test_after_drops_the_delays_of_many_helpers_are_spread_over_the_full_jitter_window(stomp_push):
    base, cap, factor, instances, attempts = 100, 800, 2, 40, 6
    backoff = {"base": base, "cap": cap, "factor": factor}
    node = stomp_push({"server": {"mode": "drop"}, "instances": instances, "helper": {"backoff": backoff}})
    wait_for(
        lambda: len(node.seen_of("state", name="waiting", attempt=attempts)) == instances,
        timeout=20,
        what=f"{attempts} reconnect waits for each of {instances} helpers",
    )
    node.command("stop")
    node.expect("done", cmd="stop")

    delays: dict[int, list[int]] = defaultdict(list)  # attempt -> every helper's delay before it
    for wait in node.seen_of("state", name="waiting"):
        assert close_of(wait)["code"] == 1006
        assert close_of(wait)["reconnect"] == "now"
        delays[wait["attempt"]].append(wait["delay"])
    for attempt, chosen in delays.items():
        ceiling = min(cap, base * factor ** (attempt - 1))
        assert all(0 <= delay <= ceiling for delay in chosen), (attempt, ceiling, sorted(chosen))

    first = delays[1]
    print(f"\nfirst reconnect delays of {instances} helpers (ms, window [0, {base}]): {sorted(first)}")
    assert len(first) == instances
    assert len(set(first)) >= instances // 2, "the helpers chose the same delays"
    assert max(first) - min(first) >= base // 2
    assert base / 4 < statistics.mean(first) < 3 * base / 4  # uniform over [0, base]: mean base/2, sd of mean ~base/22
    late = [delay for attempt in range(4, attempts + 1) for delay in delays[attempt]]
    assert max(late) > 2 * base, "the window did not grow"
    assert statistics.mean(late) > base  # uniform over [0, cap]: mean cap/2

    # The server saw the helpers keep those delays: no connection came sooner than the delay chosen before it
    # (give or take the event loop's cached time).
    arrivals: dict[int, list[float]] = defaultdict(list)
    for arrival in node.seen_of("server-connection"):
        arrivals[arrival["instance"]].append(arrival["t"])
    chosen_by: dict[int, list[int]] = defaultdict(list)
    for wait in node.seen_of("state", name="waiting"):
        chosen_by[wait["instance"]].append(wait["delay"])
    for instance, times in arrivals.items():
        for (earlier, later), delay in zip(itertools.pairwise(times), chosen_by[instance], strict=False):
            assert later - earlier >= delay - TIMER_EARLY_MS


@pytest.mark.parametrize(
    ("hold_ms", "stable_after", "expected_attempts"),
    [(100, 2000, [1, 2, 3, 4]), (600, 300, [1, 1, 1, 1])],
    ids=["short-connections-grow-the-backoff", "a-stable-connection-resets-it"],
)
def test_the_backoff_starts_again_after_a_connection_that_stayed_up(
    stomp_push, hold_ms, stable_after, expected_attempts
):
    helper = {"backoff": {"base": 50, "cap": 3200, "factor": 4}, "stableAfter": stable_after}
    node = stomp_push({"server": {"mode": "hold", "holdMs": hold_ms}, "helper": helper})
    wait_for(lambda: len(node.seen_of("state", name="waiting")) >= 4, timeout=20, what="four closes")
    node.command("stop")

    waits = node.seen_of("state", name="waiting")[:4]
    assert [wait["attempt"] for wait in waits] == expected_attempts
    assert len(node.seen_of("connected")) >= 4


# -- subscriptions survive reconnects ------------------------------------------------------------------------------


@pytest.mark.redis
def test_after_a_server_restart_the_helper_subscribes_again_and_keeps_receiving(cluster, stomp_push):
    session = cluster.login("alice")
    node = stomp_push(against(cluster.a, session.session_key, helper={"backoff": {"base": 200, "cap": 1000}}))
    topic = "/topic/interop.helper.restart"
    node.command("subscribe", destination=topic, id="prices", headers={"receipt": "r-prices"})
    node.command("subscribe", destination="/user/queue/helper", id="mine", headers={"receipt": "r-mine"})
    node.expect("receipt", timeout=15, id="r-prices")  # subscribed once connected
    node.expect("receipt", id="r-mine")
    push(cluster, topic, "before")
    assert node.expect("message", subscription="prices")["body"] == "before"

    cluster.a.stop()
    waiting = node.expect("state", timeout=10, name="waiting")
    cluster.a.start()  # same port, same database: the session is still valid
    node.expect("connected", timeout=20)
    node.expect("receipt", timeout=5, id="r-prices")  # the same SUBSCRIBE frames again, receipt headers included
    node.expect("receipt", id="r-mine")
    close = close_of(waiting)
    print(f"\nserver stopped -> close {close['code']} (reconnect: {close['reconnect']}), then subscribed again")

    push(cluster, topic, "after")
    message = node.expect("message", timeout=10, subscription="prices")
    assert (message["body"], message["destination"]) == ("after", topic)
    cluster.python(
        "from django.contrib.auth import get_user_model; from django_stomp_push import push_to_user; "
        "push_to_user(get_user_model().objects.get(username='alice'), '/queue/helper', 'mine after')"
    )
    assert node.expect("message", timeout=10, subscription="mine")["body"] == "mine after"

    node.command("unsubscribe", id="prices")
    node.expect("done", cmd="unsubscribe")
    push(cluster, topic, "after unsubscribe")
    time.sleep(1.0)
    assert [m["body"] for m in node.seen_of("message", subscription="prices")] == ["before", "after"]
    assert len(node.seen_of("connected")) == 2
