"""Fan-out: deliveries per second to N subscribers of one topic, publisher at the highest sustainable rate.

The publisher keeps a bounded number of pushes in flight (closed loop: at most ``window`` pushes not yet
received by every live subscriber), so the figure is the server's sustained rate, not a queue filling up.
"""

from __future__ import annotations

from math import ceil

from ..harness import Bench, RunResult
from ..report import Table, rate
from ..servers import TARGETS
from . import Scenario
from .common import check_delivered, layer_label, record, server_table

FULL_SIZES = [100, 1_000, 5_000]
SMOKE_SIZES = [20]


def load(subscribers: int, smoke: bool) -> dict[str, object]:
    return {
        "mode": "max",
        "subscribers": subscribers,
        # about 20,000 deliveries in flight, between 4 and 64 pushes
        "window": max(4, min(64, ceil(20_000 / subscribers))),
        "warmup_s": 0.5 if smoke else 2,
        "measure_s": 1.5 if smoke else 5,
        "drain_s": 0,
        "ramp_timeout_s": 60 + subscribers / 20,
    }


def per_cpu_second(result: RunResult) -> float | None:
    """Deliveries per CPU-second of the server processes and Redis: steadier than deliveries/s on a shared machine,
    where the server gets whatever CPU the other processes leave it."""
    cpu = (result.server_cpu_pct or 0.0) + (result.redis_cpu_pct or 0.0)
    return result.measured["deliveries_per_s"] / (cpu / 100) if cpu > 0 else None


FIGURES = {
    "rate": ("Fan-out", "deliveries/s (higher is better)", lambda r: r.measured["deliveries_per_s"]),
    "per_cpu": (
        "Fan-out per CPU-second",
        "deliveries per CPU-second used by the server processes and Redis (higher is better)",
        per_cpu_second,
    ),
}


def run(bench: Bench) -> list[Table]:
    sizes = bench.sizes or (SMOKE_SIZES if bench.smoke else FULL_SIZES)
    combos = bench.combinations()
    layers = list(dict.fromkeys(layer for layer, _ in combos))
    tables = {
        (figure, layer): server_table(bench, f"{title}, {layer_label(layer)}", metric, rate, "subscribers")
        for figure, (title, metric, _) in FIGURES.items()
        for layer in layers
    }
    # Repeats are the outer loop: noise from other processes spreads over every server alike.
    for repeat in range(bench.repeats):
        for n in sizes:
            for layer, target in combos:
                result = bench.measure(target, layer, load(n, bench.smoke), timeout=120 + n / 10)
                check_delivered(bench, result)
                for figure, (_, _, value) in FIGURES.items():
                    label = f"fanout #{repeat + 1} n={n} {target}/{layer} {figure}"
                    record(bench, tables[figure, layer].cell(f"{n:,}", target), result, value, label, rate)
    # The ceiling and RabbitMQ have no channel layer; they are shown in the other tables for reference.
    layerless = [key for key, target in TARGETS.items() if not target.layered]
    for (figure, layer), table in tables.items():
        memory = tables.get((figure, "memory"))
        borrowed = [key for key in layerless if key in table.columns]
        if layer == "memory" or memory is None or not borrowed:
            continue
        for key in borrowed:
            for row, cells in table.rows.items():
                if key in memory.rows.get(row, {}):
                    cells[key] = memory.rows[row][key]
            table.borrowed.add(key)
        names = " and ".join(TARGETS[key].label for key in borrowed)
        table.note = f"The {names} columns repeat the in-memory table's: they need no channel layer."
    return list(tables.values())


SCENARIO = Scenario("fanout", "Fan-out deliveries/s", run)
