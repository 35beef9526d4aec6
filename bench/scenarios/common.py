"""Pieces the load scenarios share: table columns, side figures, and turning runs into table cells."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..harness import Bench, RunResult
from ..report import Measurement, Table, mb, pct, seconds
from ..servers import LAYERS, TARGETS

#: ratios are given against the code before a change (``--baseline``), the textbook, the broker and the ceiling
BASELINES = ["baseline", "textbook", "rabbitmq", "websockets"]
RESOURCE_EXTRAS = {
    "connect+subscribe all": seconds,
    "server CPU": pct,
    "load generator CPU": pct,
    "redis CPU": pct,
    "other CPU": pct,
    "server RSS": mb,
}


def columns(bench: Bench) -> dict[str, str]:
    order = ["websockets", "rabbitmq", "textbook", "baseline", "ours"]
    return {key: TARGETS[key].label for key in order if key in bench.targets}


@dataclass(frozen=True)
class TableSet:
    """What the tables of one scenario share: their columns, the baselines the other columns are compared with, and
    the side figures every one of them details after its own."""

    columns: dict[str, str]
    baselines: list[str]
    extras: dict[str, Callable[[float], str]] = field(default_factory=dict)

    def table(
        self,
        title: str,
        metric: str,
        fmt: Callable[[float], str],
        row_header: str,
        extras: dict[str, Callable[[float], str]] | None = None,
        note: str = "",
    ) -> Table:
        return Table(
            title=title,
            metric=metric,
            fmt=fmt,
            row_header=row_header,
            columns=dict(self.columns),
            baselines=list(self.baselines),
            extras={**(extras or {}), **self.extras},
            note=note,
        )


def server_table(
    bench: Bench,
    title: str,
    metric: str,
    fmt: Callable[[float], str],
    row_header: str = "deployment",
    extras: dict[str, Callable[[float], str]] | None = None,
) -> Table:
    """A table with a column per server of this run, compared with the baselines, and the resource side figures."""
    servers = TableSet(columns(bench), [b for b in BASELINES if b in bench.targets], RESOURCE_EXTRAS)
    return servers.table(title, metric, fmt, row_header, extras)


def layer_label(layer: str) -> str:
    return LAYERS[layer].label


def record(
    bench: Bench,
    cell: Measurement,
    result: RunResult,
    value: Callable[[RunResult], float | None],
    label: str,
    fmt: Callable[[float], str],
) -> None:
    """Add ``value(result)`` to ``cell`` (or the failure), and log one progress line."""
    figure = None if result.error else value(result)
    if figure is None:
        cell.fail("; ".join([result.error or "no figure", *result.notes()]))
        bench.log(f"  {label}: failed: {result.error}")
        return
    cell.add(figure, result.extras, result.notes())
    cpu = f"server {result.server_cpu_pct:.0f}% CPU, load generator {result.loadgen_cpu_pct:.0f}%"
    bench.log(f"  {label}: {fmt(figure)} ({cpu}){' — ' + '; '.join(result.notes()) if result.notes() else ''}")


def check_delivered(bench: Bench, result: RunResult) -> None:
    """Nothing delivered: in --smoke a failure (something is broken); otherwise a measured 0, noted."""
    if result.error or result.measured.get("deliveries"):
        return
    if bench.smoke:
        bench.reject(result, "no message was delivered")
