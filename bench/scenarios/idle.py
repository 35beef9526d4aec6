"""Idle subscribed connections (10 s heart-beats both ways): server memory per connection, CPU while idle.

RSS per connection = (RSS with N + warm connections - RSS with the warm ones) / N; the warm connections make
the server load its code paths first, so the delta is the connections' own cost.
"""

from __future__ import annotations

from collections.abc import Callable

from ..harness import Bench, RunResult
from ..report import Table, kb, mb, pct
from . import Scenario
from .common import layer_label, record, server_table

WARM = 20
HEARTBEAT_MS = 10_000


def load(subscribers: int, measure_s: float) -> dict[str, object]:
    return {
        "mode": "idle",
        "subscribers": subscribers + WARM,
        "warm_subscribers": WARM,
        "heartbeat": [HEARTBEAT_MS, HEARTBEAT_MS],
        "settle_s": 3,
        "measure_s": measure_s,
        "ramp_timeout_s": 60 + subscribers / 40,
    }


def per_connection(n: int) -> Callable[[RunResult], float | None]:
    def figure(result: RunResult) -> float | None:
        if result.rss_warm is None or result.rss_end is None:
            return None
        return (result.rss_end - result.rss_warm) / n

    return figure


def _run(bench: Bench, n: int, measure_s: float, with_cpu: bool) -> list[Table]:
    rss_table = server_table(
        bench,
        f"Server memory per idle subscribed connection ({n:,} connections)",
        "RSS per connection (lower is better)",
        kb,
    )
    cpu_table = server_table(
        bench,
        f"{n:,} idle connections, {HEARTBEAT_MS // 1000} s heart-beats: server CPU",
        "server CPU, % of one core (lower is better)",
        pct,
    )
    total_table = server_table(
        bench, f"{n:,} idle connections: server RSS", "server RSS, all processes (lower is better)", mb
    )
    spec = load(n, measure_s)
    for repeat in range(bench.repeats):
        for layer, target in bench.combinations():
            result = bench.measure(target, layer, spec, timeout=spec["ramp_timeout_s"] + measure_s + 60)
            connected = result.ready.get("connected", 0)
            if not result.error and connected < (n + WARM) * 0.99:
                bench.reject(result, f"only {connected} of {n + WARM} connections subscribed")
            row = layer_label(layer)
            label = f"idle n={n} #{repeat + 1} {target}/{layer}"
            record(bench, rss_table.cell(row, target), result, per_connection(n), label + " RSS/conn", kb)
            if with_cpu:
                record(bench, cpu_table.cell(row, target), result, lambda r: r.server_cpu_pct, label + " CPU", pct)
                record(bench, total_table.cell(row, target), result, lambda r: r.rss_end, label + " RSS", mb)
    return [rss_table, cpu_table, total_table] if with_cpu else [rss_table]


def run_rss(bench: Bench) -> list[Table]:
    return _run(bench, 50 if bench.smoke else 1_000, measure_s=1 if bench.smoke else 3, with_cpu=False)


def run_many(bench: Bench) -> list[Table]:
    return _run(bench, 200 if bench.smoke else 10_000, measure_s=2 if bench.smoke else 20, with_cpu=True)


RSS_SCENARIO = Scenario("idle_rss", "Server RSS per idle subscribed connection", run_rss)
MANY_IDLE_SCENARIO = Scenario(
    "idle_10k", "10,000 idle connections with heart-beats: CPU and RSS", run_many, smoke=False
)
