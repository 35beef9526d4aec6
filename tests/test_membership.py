"""Membership: a hub's channel-layer groups joined and left through one bounded path."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter

import pytest

from django_stomp_push import membership as membership_module
from django_stomp_push.membership import MEMBERSHIP_CONCURRENCY, Membership


class GroupCommands:
    """The group commands of a channel layer that take a while, count how many run at once, and can fail."""

    def __init__(self, delay: float = 0.002) -> None:
        self.delay = delay
        self.in_flight = self.peak = 0
        self.added: Counter[str] = Counter()
        self.discarded: Counter[str] = Counter()
        self.members: set[str] = set()
        #: how many of the next group_add / group_discard calls fail
        self.failing_adds = self.failing_discards = 0

    async def _command(self, failing: str) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(random.uniform(0, self.delay))
            if getattr(self, failing):
                setattr(self, failing, getattr(self, failing) - 1)
                raise ConnectionError("Redis is away")
        finally:
            self.in_flight -= 1

    async def group_add(self, group: str, channel: str) -> None:
        await self._command("failing_adds")
        self.added[group] += 1
        self.members.add(group)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._command("failing_discards")
        self.discarded[group] += 1
        self.members.discard(group)


def membership(layer: GroupCommands) -> Membership:
    groups = Membership(layer, local=False)
    groups.channel_name = "stomp_push.hub.test"
    return groups


async def until(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.005)


async def test_a_mass_departure_leaves_every_group_exactly_once_with_a_bounded_number_of_commands_in_flight():
    layer = GroupCommands()
    groups = membership(layer)
    names = [f"d.{n}" for n in range(6 * 256)]  # six clients with 256 subscriptions each
    await asyncio.gather(*(groups.join(name) for name in names))
    assert layer.added == Counter(names) and 1 < layer.peak <= MEMBERSHIP_CONCURRENCY
    layer.peak = 0
    for name in names:  # the six clients drop at once
        groups.leave(name)
    await until(lambda: groups.pending == 0)
    assert layer.discarded == Counter(names) and layer.members == set() and groups.refs == {}
    assert 1 < layer.peak <= MEMBERSHIP_CONCURRENCY


async def test_joins_go_before_queued_leaves():
    layer = GroupCommands()
    groups = membership(layer)
    leaving = [f"old.{n}" for n in range(1000)]
    await asyncio.gather(*(groups.join(name) for name in leaving))
    for name in leaving:
        groups.leave(name)
    await asyncio.gather(*(groups.join(f"new.{n}") for n in range(50)))  # 50 clients subscribe meanwhile
    assert len(layer.discarded) < len(leaving) / 2  # they did not wait for the leaves
    await until(lambda: groups.pending == 0)
    assert layer.members == {f"new.{n}" for n in range(50)} and layer.peak <= MEMBERSHIP_CONCURRENCY


async def test_a_group_joined_again_while_its_leave_is_queued_costs_no_command():
    layer = GroupCommands()
    groups = membership(layer)
    await groups.join("g")
    groups.leave("g")
    await groups.join("g")  # before the leave ran: the hub is still in the group
    await until(lambda: groups.pending == 0)
    assert (layer.added["g"], layer.discarded["g"], layer.members) == (1, 0, {"g"})
    assert groups.refs == {"g": 1}


async def test_a_group_joined_again_while_its_leave_is_in_flight_is_joined_once_the_leave_has_landed():
    layer = GroupCommands(delay=0)
    groups = membership(layer)
    await groups.join("g")
    layer.delay = 0.1
    groups.leave("g")
    await asyncio.sleep(0.01)  # the leave is on its way to Redis
    await groups.join("g")  # returns only once the hub is in the group again
    assert (layer.added["g"], layer.discarded["g"], layer.members) == (2, 1, {"g"})


async def test_a_failed_join_fails_every_waiter_without_counting_them_and_the_next_caller_joins(monkeypatch):
    monkeypatch.setattr(membership_module, "LEAVE_RETRY_DELAY", 0.01)
    layer = GroupCommands()
    groups = membership(layer)
    layer.failing_adds = 1
    results = await asyncio.gather(groups.join("g"), groups.join("g"), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    assert groups.refs == {} and not groups.has_joined("g")
    await groups.join("g")
    assert groups.refs == {"g": 1} and layer.members == {"g"}
    groups.leave("g")
    await until(lambda: groups.pending == 0 and not layer.members)


async def test_a_failed_leave_is_retried_with_backoff(monkeypatch):
    monkeypatch.setattr(membership_module, "LEAVE_RETRY_DELAY", 0.01)
    layer = GroupCommands()
    groups = membership(layer)
    await groups.join("g")
    layer.failing_discards = membership_module.LEAVE_ATTEMPTS - 1
    groups.leave("g")
    await until(lambda: not layer.members)
    assert layer.discarded["g"] == 1 and layer.failing_discards == 0


async def test_a_leave_that_keeps_failing_is_given_up_with_a_warning_for_all_its_groups_at_once(monkeypatch, caplog):
    monkeypatch.setattr(membership_module, "LEAVE_RETRY_DELAY", 0.01)
    layer = GroupCommands()
    groups = membership(layer)
    await asyncio.gather(*(groups.join(f"g.{n}") for n in range(20)))
    layer.failing_discards = 10_000
    with caplog.at_level(logging.WARNING, logger="django_stomp_push"):
        for n in range(20):
            groups.leave(f"g.{n}")
        await until(lambda: "could not leave" in caplog.text, timeout=2)
        await asyncio.sleep(0.1)  # no retry is left
    assert layer.failing_discards == 10_000 - 20 * membership_module.LEAVE_ATTEMPTS
    # Grouped, not one line per group: the groups given up in one burst share a warning (a loaded machine may
    # split the burst where the retries of a wave finish apart).
    counts = [int(r.getMessage().split()[3]) for r in caplog.records if r.getMessage().startswith("could not leave")]
    assert sum(counts) == 20 and len(counts) <= 3, counts
    assert groups.pending == 0 and len(layer.members) == 20  # left to the layer's group expiry


async def test_a_rejoin_runs_concurrently_within_the_same_bound_as_joins_and_leaves():
    layer = GroupCommands()
    groups = membership(layer)
    names = [f"d.{n}" for n in range(500)]
    await asyncio.gather(*(groups.join(name) for name in names))
    layer.added.clear()
    layer.peak = 0
    rejoin = asyncio.create_task(groups.rejoin())
    for name in names[:100]:
        groups.leave(name)
    await asyncio.gather(rejoin, *(groups.join(f"new.{n}") for n in range(100)))
    await until(lambda: groups.pending == 0)
    assert 1 < layer.peak <= MEMBERSHIP_CONCURRENCY
    assert layer.members == set(names[100:]) | {f"new.{n}" for n in range(100)}
    assert max(layer.added.values()) == 1  # each group added once: by the re-join or by its join


def test_with_the_in_memory_layer_a_join_is_a_count_and_nothing_else():
    groups = Membership(None, local=True)  # no layer to call
    join = groups.join("g")
    with pytest.raises(StopIteration):  # completes without suspending: no task, no future, no lock
        join.send(None)
    assert groups.has_joined("g") and groups.pending == 0
    groups.leave("g")
    assert not groups.has_joined("g") and groups.pending == 0
