"""Scale-out, Redis's side alone: the pub/sub layer's cost per push as the number K of subscribed processes grows,
with subscribers that keep up.

The ``scale`` scenario's K hub stand-ins share this machine's 2 cores: at large K they cannot keep up, the pushes/s
falls, each of the pusher's pipelines carries fewer pushes, and Redis writes to every subscriber's socket once per
push. Here one process holds K subscribers that only read (:mod:`bench.scale_light`), as hubs on machines of their
own would keep up, and the pusher is the package's (``apush`` from 16 coroutines, and ``push()`` from 4 threads):
what is measured is Redis and the pusher. K runs to 128, past what 2 cores can host as processes.
"""

from __future__ import annotations

import dataclasses
import itertools

from ..harness import Bench
from ..report import Table, pct, rate, us
from ..scale_fleet import Fleet, fleet
from . import Scenario
from .scale import SENDERS, SMOKE, Sender, _phase, _usage

FULL_READERS = (1, 4, 16, 32, 64, 128)
SMOKE_READERS = (1, 8)
PUSHES, WARMUP, STALL_S = 5_000, 500, 10.0
SMOKE_PUSHES, SMOKE_WARMUP = 500, 50
EXTRAS = {"pushes/s": rate, "Redis CPU": pct, "pusher CPU": pct, "readers CPU": pct, "delivered": pct}


def run(bench: Bench) -> list[Table]:
    readers = SMOKE_READERS if bench.smoke else FULL_READERS
    pushes, warmup = (SMOKE_PUSHES, SMOKE_WARMUP) if bench.smoke else (PUSHES, WARMUP)
    note = (
        f"One process holds K subscribers of the benchmark topic's group channel that only read (subscriber 0 decodes "
        f"each message); the pusher is the package's. {pushes:,} pushes per measurement as fast as the sender goes, "
        f"after {warmup} warm-up pushes, until every subscriber received the last; a missed push fails the "
        "measurement. Redis CPU is INFO cpu (used_cpu_sys + used_cpu_user) over the window; pusher CPU is its "
        "time.process_time()."
    )
    columns = {sender.key: sender.label for sender in SENDERS}
    redis_cpu = Table(
        title="Scale-out, Redis alone: Redis CPU per push on the pub/sub layer, subscribers that keep up",
        metric="Redis CPU per push (lower is better)",
        fmt=us,
        row_header="subscribers (K)",
        columns=columns,
        baselines=[],
        extras={**EXTRAS, "pusher CPU per push": us},
        note=note,
    )
    pusher_cpu = Table(
        title="Scale-out, Redis alone: pusher CPU per push on the pub/sub layer",
        metric="CPU per push of the pushing process (lower is better)",
        fmt=us,
        row_header="subscribers (K)",
        columns=columns,
        baselines=[],
        extras={**EXTRAS, "Redis CPU per push": us},
        note="The same measurements as the table above.",
    )
    for k in readers:
        for t in (redis_cpu, pusher_cpu):
            t.rows[str(k)] = {}
    runs = itertools.count(1)
    for repeat in range(bench.repeats):
        shift = repeat % len(readers)
        for k in readers[shift:] + readers[:shift]:
            label = f"scale_redis #{repeat + 1} K={k}"
            bench._wait_until_quiet()
            try:
                with fleet("pubsub", k, bench.logs / f"scale-redis-{next(runs):03d}-k{k}", light=True) as running:
                    order = SENDERS[repeat % 2 :] + SENDERS[: repeat % 2]
                    for sender in order:
                        _measure(bench, running, k, sender, pushes, warmup, (redis_cpu, pusher_cpu), label)
            except Exception as exc:
                bench.failures += 1
                bench.log(f"  {label}: failed: {type(exc).__name__}: {exc}")
                for t in (redis_cpu, pusher_cpu):
                    for sender in SENDERS:
                        if len(t.cell(str(k), sender.key).values) <= repeat:
                            t.cell(str(k), sender.key).fail(f"{type(exc).__name__}: {exc}")
    return [redis_cpu, pusher_cpu]


def _measure(
    bench: Bench,
    running: Fleet,
    k: int,
    sender: Sender,
    pushes: int,
    warmup: int,
    tables: tuple[Table, Table],
    label: str,
) -> None:
    sizes = dataclasses.replace(SMOKE, stall_s=STALL_S)  # _phase reads the stall time only
    how = {"mode": sender.mode, "concurrency": sender.concurrency}
    warm = _phase(running, sizes, warmup, **how)
    result = _phase(running, sizes, pushes, **how) if not warm.problems() else warm
    if problems := result.problems():
        for t in tables:
            t.cell(str(k), sender.key).fail("; ".join(problems))
        bench.failures += 1
        bench.log(f"  {label} {sender.key}: failed: {'; '.join(problems)}")
        return
    usage = _usage(result)
    redis_us = (result.after.redis_s - result.before.redis_s) * 1e6 / pushes
    pusher_us = result.pushed["cpu_s"] * 1e6 / pushes
    per_second = pushes / max(result.last_delivery - result.pushed["t0"], 1e-9)
    extras: dict[str, float | None] = {
        "pushes/s": per_second,
        "Redis CPU": usage["Redis CPU"],
        "pusher CPU": 100.0 * result.pushed["cpu_s"] / max(result.pushed["wall_s"], 1e-9),
        "readers CPU": usage["hubs CPU"],
        "pusher CPU per push": pusher_us,
        "Redis CPU per push": redis_us,
        "delivered": 100.0 * result.received / result.expected,
    }
    tables[0].cell(str(k), sender.key).add(redis_us, extras)
    tables[1].cell(str(k), sender.key).add(pusher_us, extras)
    bench.log(
        f"  {label} {sender.key}: Redis {us(redis_us)}/push, pusher {us(pusher_us)}/push, {rate(per_second)} "
        f"pushes/s (Redis {usage['Redis CPU']:.0f}%, readers {usage['hubs CPU']:.0f}%)"
    )


SCENARIO = Scenario(
    "scale_redis", "Scale-out, Redis alone: pub/sub push cost with K subscribers that keep up", run, smoke=False
)
