"""Scale-out, Redis's side alone: the pub/sub layer's cost per push as the number K of subscribed processes grows,
with subscribers that keep up.

The ``scale`` scenario's K hub stand-ins share this machine's 2 cores: at large K they cannot keep up, the pushes/s
falls, each of the pusher's pipelines carries fewer pushes, and Redis writes to every subscriber's socket once per
push. Here one process holds K subscribers that only read (:mod:`bench.scale_light`), as hubs on machines of their
own would keep up, and the pusher is the package's (``apush`` from 16 coroutines, and ``push()`` from 4 threads):
what is measured is Redis and the pusher. K runs to 128, past what 2 cores can host as processes.

Each K is measured twice, interleaved: subscribed to Redis directly, and behind relays (one per
``PROCESSES_PER_RELAY`` subscribers, as one relay per 8-core machine): Redis then has K / 8 subscribers.
"""

from __future__ import annotations

import itertools

from ..harness import Bench
from ..report import Table, pct, rate, us
from ..scale_fleet import PROCESSES_PER_RELAY, Fleet, fleet
from . import Scenario
from .common import TableSet
from .scale import SENDERS, Sender, cpu_usage, measured_phase, per_push, push_figures

FULL_READERS = (1, 4, 16, 32, 64, 128)
SMOKE_READERS = (1, 8)
PUSHES, WARMUP, STALL_S = 5_000, 500, 10.0
SMOKE_PUSHES, SMOKE_WARMUP = 500, 50
EXTRAS = {"pushes/s": rate, "Redis CPU": pct, "pusher CPU": pct, "readers CPU": pct, "delivered": pct}


def run(bench: Bench) -> list[Table]:
    readers = SMOKE_READERS if bench.smoke else FULL_READERS
    if bench.sizes:  # --sizes: those K
        readers = tuple(bench.sizes)
    pushes, warmup = (SMOKE_PUSHES, SMOKE_WARMUP) if bench.smoke else (PUSHES, WARMUP)
    note = (
        f"One process holds K subscribers of the benchmark topic's group channel that only read (subscriber 0 decodes "
        f"each message); the pusher is the package's. {pushes:,} pushes per measurement as fast as the sender goes, "
        f"after {warmup} warm-up pushes, until every subscriber received the last; a missed push fails the "
        "measurement. Redis CPU is INFO cpu (used_cpu_sys + used_cpu_user) over the window; pusher CPU is its "
        "time.process_time()."
    )
    table = TableSet({sender.key: sender.label for sender in SENDERS}, baselines=[]).table
    redis_cpu = table(
        "Scale-out, Redis alone: Redis CPU per push on the pub/sub layer, subscribers that keep up",
        "Redis CPU per push (lower is better)",
        us,
        "subscribers (K)",
        {**EXTRAS, "pusher CPU per push": us},
        note,
    )
    pusher_cpu = table(
        "Scale-out, Redis alone: pusher CPU per push on the pub/sub layer",
        "CPU per push of the pushing process (lower is better)",
        us,
        "subscribers (K)",
        {**EXTRAS, "Redis CPU per push": us},
        "The same measurements as the table above.",
    )
    combinations = [(layer, k) for k in readers for layer in LAYERS]
    for layer, k in combinations:
        for t in (redis_cpu, pusher_cpu):
            t.rows[row(layer, k)] = {}
    runs = itertools.count(1)
    for repeat in range(bench.repeats):
        shift = repeat % len(combinations)
        for layer, k in combinations[shift:] + combinations[:shift]:
            name = row(layer, k)
            label = f"scale_redis #{repeat + 1} {layer} K={k}"
            bench._wait_until_quiet()
            try:
                logs = bench.logs / f"scale-redis-{next(runs):03d}-{layer}-k{k}"
                with fleet(layer, k, logs, light=True) as running:
                    order = SENDERS[repeat % 2 :] + SENDERS[: repeat % 2]
                    for sender in order:
                        _measure(bench, running, name, sender, pushes, warmup, (redis_cpu, pusher_cpu), label)
            except Exception as exc:
                bench.failures += 1
                bench.log(f"  {label}: failed: {type(exc).__name__}: {exc}")
                for t in (redis_cpu, pusher_cpu):
                    for sender in SENDERS:
                        if len(t.cell(name, sender.key).values) <= repeat:
                            t.cell(name, sender.key).fail(f"{type(exc).__name__}: {exc}")
    return [redis_cpu, pusher_cpu]


LAYERS = ("pubsub", "relay")


def row(layer: str, k: int) -> str:
    """A table row: K, and behind how many relays."""
    return str(k) if layer == "pubsub" else f"{k} behind {-(-k // PROCESSES_PER_RELAY)} relay(s)"


def _measure(
    bench: Bench,
    running: Fleet,
    name_of_row: str,
    sender: Sender,
    pushes: int,
    warmup: int,
    tables: tuple[Table, Table],
    label: str,
) -> None:
    name = f"{label} {sender.key}"

    def fail(reason: str) -> None:
        for t in tables:
            t.cell(name_of_row, sender.key).fail(reason)

    how = {"mode": sender.mode, "concurrency": sender.concurrency}
    result = measured_phase(bench, running, name, fail, STALL_S, (warmup, pushes), **how)
    if result is None:
        return
    usage, figures = cpu_usage(result), push_figures(result, pushes)
    extras: dict[str, float | None] = {**figures, "Redis CPU": usage["Redis CPU"], "readers CPU": usage["hubs CPU"]}
    for t, key in zip(tables, ("Redis CPU per push", "pusher CPU per push"), strict=True):
        t.cell(name_of_row, sender.key).add(figures[key], extras)
    bench.log(f"  {name}: {per_push(figures)} (Redis {usage['Redis CPU']:.0f}%, readers {usage['hubs CPU']:.0f}%)")


SCENARIO = Scenario(
    "scale_redis", "Scale-out, Redis alone: pub/sub push cost with K subscribers that keep up", run, smoke=False
)
