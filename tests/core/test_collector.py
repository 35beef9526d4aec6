"""The garbage collector's thresholds during a storm of connects: raised while many wait, put back after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from django_stomp_push.core.admission import Gate
from django_stomp_push.core.collector import (
    DEFAULT_THRESHOLDS,
    STORM_PENDING,
    STORM_THRESHOLDS,
    StormCollector,
    collector,
)
from tests.test_consumer import stomp_settings


class Waiting:
    """A connection that waits for its CONNECT's answer (never refused in these tests)."""

    def close(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("not refused here")


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    """Python's default thresholds, and the process's collector policy as at start-up (no loop in a storm: a gate
    of an earlier test's event loop may have closed while many of its connections still waited)."""
    before, storms = gc.get_threshold(), (collector.storms, collector._saved)
    gc.set_threshold(*DEFAULT_THRESHOLDS)
    collector.storms, collector._saved = 0, None
    yield
    gc.set_threshold(*before)
    collector.storms, collector._saved = storms


def test_a_storm_raises_the_default_thresholds_and_its_end_puts_them_back():
    gate, waiting = Gate(), [Waiting() for _ in range(STORM_PENDING + 1)]
    for connection in waiting[:STORM_PENDING]:
        assert gate.admit(connection)
    assert gc.get_threshold() == DEFAULT_THRESHOLDS  # as many as STORM_PENDING waiting: no storm yet
    assert gate.admit(waiting[-1])
    assert gc.get_threshold() == STORM_THRESHOLDS
    for connection in waiting[:-1]:
        gate.connected(connection)
    assert gc.get_threshold() == STORM_THRESHOLDS  # one still waits: the storm goes on
    gate.connected(waiting[-1])
    assert gc.get_threshold() == DEFAULT_THRESHOLDS


def test_thresholds_the_project_set_are_left_alone():
    gc.set_threshold(2000, 15, 15)
    storms = StormCollector()
    storms.entered()
    assert gc.get_threshold() == (2000, 15, 15)
    storms.left()
    assert gc.get_threshold() == (2000, 15, 15)


def test_thresholds_the_project_changes_during_a_storm_are_kept_after_it():
    storms = StormCollector()
    storms.entered()
    gc.set_threshold(5000, 10, 10)
    storms.left()
    assert gc.get_threshold() == (5000, 10, 10)


def test_with_two_event_loops_in_a_storm_the_thresholds_come_back_when_both_are_out():
    storms = StormCollector()
    storms.entered()
    storms.entered()
    storms.left()
    assert gc.get_threshold() == STORM_THRESHOLDS
    storms.left()
    assert gc.get_threshold() == DEFAULT_THRESHOLDS
    assert storms.deferred == 1


def test_defer_gc_in_storms_false_leaves_the_collector_alone():
    with stomp_settings(defer_gc_in_storms=False):
        gate = Gate()
        for _ in range(STORM_PENDING * 2):
            assert gate.admit(Waiting())
        assert gc.get_threshold() == DEFAULT_THRESHOLDS
