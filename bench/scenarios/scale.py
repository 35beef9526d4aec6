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
:data:`MAX_HUBS`); ``--layers`` does not apply (both layers are measured, each on its own Redis).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..harness import Bench
from ..report import Table, mb, ms, pct, rate, us
from ..scale_fleet import Fleet, PhaseResult, fleet
from . import Scenario


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
}
SATURATION_EXTRAS = {
    "pushes/s": rate,
    "Redis CPU": pct,
    "pusher CPU": pct,
    "hubs CPU per push": us,
    "other CPU": pct,
    "RSS per hub": mb,
}
LATENCY_EXTRAS = {"Redis CPU per push": us, "Redis CPU": pct, "hubs CPU": pct, "pusher CPU": pct, "other CPU": pct}


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

        def table(
            title: str,
            metric: str,
            fmt: Callable[[float], str],
            row_header: str,
            extras: dict[str, Callable[[float], str]],
            note: str,
        ) -> Table:
            return Table(
                title=title,
                metric=metric,
                fmt=fmt,
                row_header=row_header,
                columns=dict(COLUMNS),
                baselines=["core"],
                extras={**extras, "delivered": pct},
                note=note,
            )

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


def _phase(running: Fleet, sizes: Sizes, count: int, **command: object) -> PhaseResult:
    push_timeout = 60 + count / 50  # at worst 50 pushes/s
    return running.phase({"cmd": "push", "count": count, **command}, push_timeout, sizes.stall_s)


def _usage(result: PhaseResult) -> dict[str, float]:
    """CPU % of one core over the window, of Redis, the stand-ins, the pusher and everything else."""
    b, a = result.before, result.after
    window = max(a.at - b.at, 1e-9)
    figures = {
        "Redis CPU": a.redis_s - b.redis_s,
        "hubs CPU": a.hubs_s - b.hubs_s,
        "pusher CPU": a.pusher_s - b.pusher_s,
    }
    other = (a.machine_s - b.machine_s) - sum(figures.values())
    return {name: 100.0 * value / window for name, value in {**figures, "other CPU": max(0.0, other)}.items()}


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
    how = {"mode": sender.mode, "concurrency": sender.concurrency}
    warm = _phase(running, sizes, sizes.warmup, **how)
    result = _phase(running, sizes, sizes.pushes, **how) if not warm.problems() else warm
    name = f"{label} {sender.key}"
    if problems := result.problems():
        tables.fail(k, layer, sender, ("warm-up: " if result is warm else "") + "; ".join(problems))
        bench.failures += 1
        bench.log(f"  {name}: failed: {'; '.join(problems)}")
        return
    pushes = sizes.pushes
    usage = _usage(result)
    redis_us = (result.after.redis_s - result.before.redis_s) * 1e6 / pushes
    pusher_us = result.pushed["cpu_s"] * 1e6 / pushes
    per_second = pushes / max(result.last_delivery - result.pushed["t0"], 1e-9)
    extras: dict[str, float | None] = {
        **usage,
        "pushes/s": per_second,
        "pusher CPU": 100.0 * result.pushed["cpu_s"] / max(result.pushed["wall_s"], 1e-9),
        "hubs CPU per push": (result.after.hubs_s - result.before.hubs_s) * 1e6 / pushes,
        "pusher CPU per push": pusher_us,
        "Redis CPU per push": redis_us,
        "RSS per hub": rss,
        "delivered": 100.0 * result.received / result.expected,
    }
    for t, value in zip(tables.saturation, (redis_us, pusher_us, per_second), strict=True):
        t.cell(row(k, sender), layer).add(value, extras)
    bench.log(
        f"  {name}: Redis {us(redis_us)}/push, pusher {us(pusher_us)}/push, {rate(per_second)} pushes/s "
        f"(Redis {usage['Redis CPU']:.0f}%, hubs {usage['hubs CPU']:.0f}%, pusher {extras['pusher CPU']:.0f}% CPU)"
    )


def latency(bench: Bench, tables: ScaleTables, running: Fleet, sizes: Sizes, layer: str, k: int, label: str) -> None:
    warm = _phase(running, sizes, sizes.warmup, mode="async", rate=sizes.rate)
    count = sizes.rate * sizes.rate_s
    result = _phase(running, sizes, count, mode="async", rate=sizes.rate, latency=1) if not warm.problems() else warm
    name = f"{label} latency"
    if problems := result.problems():
        tables.fail(k, layer, LATENCY, ("warm-up: " if result is warm else "") + "; ".join(problems))
        bench.failures += 1
        bench.log(f"  {name}: failed: {'; '.join(problems)}")
        return
    samples = result.latencies_ms()
    p50, p99 = quantile(samples, 0.50), quantile(samples, 0.99)
    extras: dict[str, float | None] = {
        **_usage(result),
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
