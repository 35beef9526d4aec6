"""Scale-out: what a push costs as the number K of server processes subscribed to its topic grows, on
channels-redis's core layer (``RedisChannelLayer``: a ``group_send`` writes one message per member channel) against
its pub/sub layer (``RedisPubSubChannelLayer``: one PUBLISH).

Each run starts a private Redis, K hub stand-ins (:mod:`bench.scale_hub`: real processes set up with the package's
settings, each running the package's hub with one subscriber of the benchmark topic) and one pusher
(:mod:`bench.scale_push`), all at once, and waits until every stand-in's hub has joined the topic's group
(:mod:`bench.scale_fleet`). Then, in an order that turns with the repeat:

- saturation, per sender: ``apush`` from 16 coroutines on one event loop (the headline) and ``push()`` from
  4 threads: warm-up pushes, then N pushes as fast as the sender goes, until every stand-in received the last.
  Redis CPU per push (INFO cpu: ``used_cpu_sys + used_cpu_user``, over the window), the pusher's CPU per push
  (``time.process_time()``), pushes/s (N over the time from the first push to the last delivery);
- latency: ``apush`` open loop at a fixed rate; p50/p99 over every delivery of every stand-in.

Any stand-in missing a push (or a duplicate, a failed push, a channel-layer error) fails the measurement. Runs are
interleaved over (layer, K), their order turning with the repeat. ``--sizes`` chooses the K values (up to
:data:`MAX_HUBS`); ``--layers`` does not apply (every column is measured, each on its own Redis). The third column
is the pub/sub layer with each stand-in's hub behind a relay (``manage.py stomp_push_relay``), one relay per
:data:`~bench.scale_fleet.PROCESSES_PER_RELAY` stand-ins, as one relay per 8-core machine.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..harness import Bench
from ..report import Table, mb, ms, pct, rate, us
from ..scale_fleet import PROCESSES_PER_RELAY, Fleet, PhaseResult, fleet
from . import Scenario
from .common import TableSet


@dataclass(frozen=True)
class Sizes:
    hubs: tuple[int, ...]
    #: pushes per saturation measurement: below the core layer's hub-channel capacity (10,000), so that a burst
    #: is never dropped there because a stand-in is behind
    pushes: int
    warmup: int
    #: pushes/s of the latency measurement, and its length in seconds
    rate: int
    rate_s: int
    #: seconds without a new delivery after which the pushes a stand-in is still missing count as lost
    stall_s: float


FULL = Sizes(hubs=(1, 4, 16, 32), pushes=1_000, warmup=100, rate=100, rate_s=4, stall_s=10.0)
SMOKE = Sizes(hubs=(1, 2), pushes=300, warmup=30, rate=100, rate_s=1, stall_s=10.0)
MAX_HUBS = 64


@dataclass(frozen=True)
class Sender:
    key: str
    label: str
    mode: str  # a scale_push mode: "async" or "threads"
    concurrency: int


SENDERS = (Sender("async", "apush, 16 coroutines", "async", 16), Sender("threads", "push(), 4 threads", "threads", 4))
HEADLINE = SENDERS[0]
LATENCY = "latency"
COLUMNS = {
    "core": "core layer (RedisChannelLayer)",
    "pubsub": "pub/sub layer (RedisPubSubChannelLayer)",
    "relay": f"pub/sub behind a relay per {PROCESSES_PER_RELAY} processes",
}
SATURATION_EXTRAS = {
    "pushes/s": rate,
    "Redis CPU": pct,
    "pusher CPU": pct,
    "hubs CPU per push": us,
    "relays CPU per push": us,
    "other CPU": pct,
    "RSS per hub": mb,
}
LATENCY_EXTRAS = {
    "Redis CPU per push": us,
    "Redis CPU": pct,
    "hubs CPU": pct,
    "relays CPU": pct,
    "pusher CPU": pct,
    "other CPU": pct,
}


def hub_counts(bench: Bench, sizes: Sizes) -> list[int]:
    """K values: ``--sizes`` when given (those up to :data:`MAX_HUBS`: larger ones are other scenarios' sizes)."""
    if not bench.sizes:
        return list(sizes.hubs)
    chosen = [size for size in bench.sizes if 1 <= size <= MAX_HUBS]
    if len(chosen) < len(bench.sizes):
        bench.log(f"scale: sizes above {MAX_HUBS} are not hub counts, left out")
    return chosen or list(sizes.hubs)


class ScaleTables:
    """The scenario's tables: rows are K (and the sender, at saturation), columns the two layers."""

    def __init__(self, sizes: Sizes, hubs: list[int]) -> None:
        saturation_note = (
            f"K hub stand-ins (one process each: the package's hub with one subscriber of the topic) and one "
            f"pusher process on a private Redis; {sizes.pushes:,} pushes per measurement as fast as the sender "
            f"goes, after {sizes.warmup} warm-up pushes, until every stand-in received the last. Headline sender: "
            f"`apush` from 16 coroutines on one event loop (an async view or task); `push()` from 4 threads is "
            "the row below it. Redis CPU is INFO cpu (used_cpu_sys + used_cpu_user); the pusher's CPU is its "
            "time.process_time(). A measurement in which a stand-in missed a push fails. On "
            f"{os.cpu_count()} cores the stand-ins, Redis and the pusher share the CPU: pushes/s at large K is "
            "bounded by the stand-ins' own CPU (details: hubs CPU per push)."
        )
        latency_note = (
            f"`apush` open loop at {sizes.rate} pushes/s for {sizes.rate_s} s (K x {sizes.rate} deliveries/s), "
            "from each push's scheduled time to its arrival in each stand-in's hub, over every delivery of every "
            "stand-in. A layer whose stand-ins need more CPU per push than the machine has left at that rate falls "
            "behind: its latency then grows with the length of the measurement (details: hubs CPU)."
        )
        table = TableSet(COLUMNS, baselines=["core"], extras={"delivered": pct}).table
        self.redis_cpu = table(
            "Scale-out: Redis CPU per push",
            "Redis CPU per push (lower is better)",
            us,
            "hubs (K), sender",
            {**SATURATION_EXTRAS, "pusher CPU per push": us},
            saturation_note,
        )
        self.pusher_cpu = table(
            "Scale-out: pusher CPU per push",
            "CPU per push of the pushing process (lower is better)",
            us,
            "hubs (K), sender",
            {"pusher CPU": pct, "pushes/s": rate, "Redis CPU per push": us},
            "The same measurements as the Redis CPU table above.",
        )
        self.throughput = table(
            "Scale-out: pushes/s, every hub receiving every push",
            "pushes/s until the last delivery (higher is better)",
            rate,
            "hubs (K), sender",
            SATURATION_EXTRAS,
            "The same measurements as the Redis CPU table above.",
        )
        self.p50 = table(
            f"Scale-out: push → hub latency at {sizes.rate} pushes/s, p50",
            "p50 latency (lower is better)",
            ms,
            "hubs (K)",
            LATENCY_EXTRAS,
            latency_note,
        )
        self.p99 = table(
            f"Scale-out: push → hub latency at {sizes.rate} pushes/s, p99",
            "p99 latency (lower is better)",
            ms,
            "hubs (K)",
            LATENCY_EXTRAS,
            "The same measurements as the p50 table above.",
        )
        for k in hubs:  # rows in K order, whatever order the runs come in
            for sender in SENDERS:
                for t in self.saturation:
                    t.rows[row(k, sender)] = {}
            for t in (self.p50, self.p99):
                t.rows[row(k)] = {}

    @property
    def saturation(self) -> tuple[Table, Table, Table]:
        return (self.redis_cpu, self.pusher_cpu, self.throughput)

    def all(self) -> list[Table]:
        return [*self.saturation, self.p50, self.p99]

    def fail(self, k: int, layer: str, task: Sender | str, reason: str) -> None:
        tables = self.saturation if isinstance(task, Sender) else (self.p50, self.p99)
        name = row(k, task) if isinstance(task, Sender) else row(k)
        for t in tables:
            t.cell(name, layer).fail(reason)


def row(k: int, sender: Sender | None = None) -> str:
    return f"{k}, {sender.label}" if sender else str(k)


def run(bench: Bench) -> list[Table]:
    sizes = SMOKE if bench.smoke else FULL
    hubs = hub_counts(bench, sizes)
    tables = ScaleTables(sizes, hubs)
    combinations = [(layer, k) for k in hubs for layer in COLUMNS]
    tasks: list[Sender | str] = [*SENDERS, LATENCY]
    runs = itertools.count(1)
    for repeat in range(bench.repeats):
        shift = repeat % len(combinations)
        for layer, k in combinations[shift:] + combinations[:shift]:
            turn = repeat % len(tasks)
            order = tasks[turn:] + tasks[:turn]
            label = f"scale #{repeat + 1} {layer} K={k}"
            bench._wait_until_quiet()
            logs = bench.logs / f"scale-{next(runs):03d}-{layer}-k{k}"
            done: list[Sender | str] = []
            try:
                with fleet(layer, k, logs) as running:
                    rss = running.hub_rss()
                    bench.log(f"  {label}: all hubs in the group {running.ready_s:.1f} s after start, {mb(rss)} each")
                    for task in order:
                        if isinstance(task, Sender):
                            saturation(bench, tables, running, sizes, layer, k, task, rss, label)
                        else:
                            latency(bench, tables, running, sizes, layer, k, label)
                        done.append(task)
            except Exception as exc:  # a process or Redis failed: the measurements not made yet fail
                reason = f"{type(exc).__name__}: {exc}"
                bench.failures += 1
                bench.log(f"  {label}: failed: {reason}")
                for task in order:
                    if task not in done:
                        tables.fail(k, layer, task, reason)
    return tables.all()


def _phase(running: Fleet, stall_s: float, count: int, **command: object) -> PhaseResult:
    push_timeout = 60 + count / 50  # at worst 50 pushes/s
    return running.phase({"cmd": "push", "count": count, **command}, push_timeout, stall_s)


def measured_phase(
    bench: Bench,
    running: Fleet,
    name: str,
    fail: Callable[[str], None],
    stall_s: float,
    counts: tuple[int, int],
    measured: dict[str, object] | None = None,
    **command: object,
) -> PhaseResult | None:
    """Warm-up pushes, then the measured ones (``counts``), sent as ``command`` says (the measured phase with
    ``measured`` added). A problem in either phase fails the measurement: ``fail(reason)``, counted and logged under
    ``name``; then None."""
    warmup, count = counts
    warm = _phase(running, stall_s, warmup, **command)
    result = _phase(running, stall_s, count, **command, **(measured or {})) if not warm.problems() else warm
    if problems := result.problems():
        fail(("warm-up: " if result is warm else "") + "; ".join(problems))
        bench.failures += 1
        bench.log(f"  {name}: failed: {'; '.join(problems)}")
        return None
    return result


def cpu_usage(result: PhaseResult) -> dict[str, float]:
    """CPU % of one core over the window, of Redis, the stand-ins, the pusher and everything else."""
    b, a = result.before, result.after
    window = max(a.at - b.at, 1e-9)
    figures = {
        "Redis CPU": a.redis_s - b.redis_s,
        "hubs CPU": a.hubs_s - b.hubs_s,
        "pusher CPU": a.pusher_s - b.pusher_s,
        "relays CPU": a.relays_s - b.relays_s,
    }
    other = (a.machine_s - b.machine_s) - sum(figures.values())
    return {name: 100.0 * value / window for name, value in {**figures, "other CPU": max(0.0, other)}.items()}


def push_figures(result: PhaseResult, pushes: int) -> dict[str, float]:
    """A saturation measurement of ``pushes`` pushes: pushes/s until the last delivery, the pusher's CPU (% of its
    wall time, its time.process_time()), Redis's and the pusher's CPU per push, and the share delivered."""
    pushed = result.pushed
    return {
        "pushes/s": pushes / max(result.last_delivery - pushed["t0"], 1e-9),
        "pusher CPU": 100.0 * pushed["cpu_s"] / max(pushed["wall_s"], 1e-9),
        "pusher CPU per push": pushed["cpu_s"] * 1e6 / pushes,
        "Redis CPU per push": (result.after.redis_s - result.before.redis_s) * 1e6 / pushes,
        "delivered": 100.0 * result.received / result.expected,
    }


def per_push(figures: dict[str, float]) -> str:
    """What a saturation measurement's log line says first: CPU per push of Redis and the pusher, pushes/s."""
    redis_us, pusher_us = figures["Redis CPU per push"], figures["pusher CPU per push"]
    return f"Redis {us(redis_us)}/push, pusher {us(pusher_us)}/push, {rate(figures['pushes/s'])} pushes/s"


def saturation(
    bench: Bench,
    tables: ScaleTables,
    running: Fleet,
    sizes: Sizes,
    layer: str,
    k: int,
    sender: Sender,
    rss: int,
    label: str,
) -> None:
    name = f"{label} {sender.key}"
    fail = functools.partial(tables.fail, k, layer, sender)
    how = {"mode": sender.mode, "concurrency": sender.concurrency}
    result = measured_phase(bench, running, name, fail, sizes.stall_s, (sizes.warmup, sizes.pushes), **how)
    if result is None:
        return
    usage, figures = cpu_usage(result), push_figures(result, sizes.pushes)
    extras: dict[str, float | None] = {
        **usage,
        **figures,
        "hubs CPU per push": (result.after.hubs_s - result.before.hubs_s) * 1e6 / sizes.pushes,
        "relays CPU per push": (result.after.relays_s - result.before.relays_s) * 1e6 / sizes.pushes,
        "RSS per hub": rss,
    }
    for t, key in zip(tables.saturation, ("Redis CPU per push", "pusher CPU per push", "pushes/s"), strict=True):
        t.cell(row(k, sender), layer).add(figures[key], extras)
    bench.log(
        f"  {name}: {per_push(figures)} (Redis {usage['Redis CPU']:.0f}%, hubs {usage['hubs CPU']:.0f}%, "
        f"pusher {figures['pusher CPU']:.0f}% CPU)"
    )


def latency(bench: Bench, tables: ScaleTables, running: Fleet, sizes: Sizes, layer: str, k: int, label: str) -> None:
    name = f"{label} latency"
    fail = functools.partial(tables.fail, k, layer, LATENCY)
    count = sizes.rate * sizes.rate_s
    counts = (sizes.warmup, count)
    result = measured_phase(
        bench, running, name, fail, sizes.stall_s, counts, {"latency": 1}, mode="async", rate=sizes.rate
    )
    if result is None:
        return
    samples = result.latencies_ms()
    p50, p99 = quantile(samples, 0.50), quantile(samples, 0.99)
    extras: dict[str, float | None] = {
        **cpu_usage(result),
        "Redis CPU per push": (result.after.redis_s - result.before.redis_s) * 1e6 / count,
        "delivered": 100.0 * result.received / result.expected,
    }
    tables.p50.cell(row(k), layer).add(p50, extras)
    tables.p99.cell(row(k), layer).add(p99, extras)
    bench.log(f"  {name}: p50 {ms(p50)}, p99 {ms(p99)} over {len(samples):,} deliveries")


def quantile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank quantile of sorted values."""
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


SCENARIO = Scenario("scale", "Scale-out: push cost as server processes grow, core and pub/sub layers", run)
