"""Publish -> receive latency at a fixed offered rate (open loop): p50 and p99 on one machine's clock.

Full: 1,000 subscribers and 8 pushes/s, i.e. 8,000 deliveries/s offered. A server that cannot keep up shows
it as growing latency, lost messages and a delivered share below 100% (details table).
"""

from __future__ import annotations

from ..harness import Bench
from ..report import Table, ms, pct
from . import Scenario
from .common import check_delivered, layer_label, record, server_table

RATE = 8


def load(smoke: bool) -> dict[str, object]:
    return {
        "mode": "rate",
        "rate": RATE,
        "subscribers": 20 if smoke else 1_000,
        "warmup_s": 1 if smoke else 2,
        "measure_s": 2 if smoke else 10,
        "ramp_timeout_s": 80,
    }


def run(bench: Bench) -> list[Table]:
    spec = load(bench.smoke)
    offered = f"{spec['subscribers']:,} subscribers x {RATE} pushes/s"
    tables = {
        quantile: server_table(
            bench,
            f"Publish → receive latency, {quantile}, {offered}",
            f"{quantile} latency (lower is better)",
            ms,
            extras={"delivered": pct},
        )
        for quantile in ("p50", "p99")
    }
    for repeat in range(bench.repeats):
        for layer, target in bench.combinations():
            result = bench.measure(target, layer, spec, timeout=150)
            check_delivered(bench, result)
            for quantile, table in tables.items():
                record(
                    bench,
                    table.cell(layer_label(layer), target),
                    result,
                    lambda r, q=quantile: r.measured.get(f"{q}_ms"),
                    f"latency #{repeat + 1} {quantile} {target}/{layer}",
                    ms,
                )
    return list(tables.values())


SCENARIO = Scenario("latency", "Publish → receive latency at a fixed rate", run)
