"""Results as tables: medians over repeats, each shown as a ratio against the baselines of the same run."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Measurement:
    """One cell: the values of its repeats, what failed, and side figures (CPU, RSS, ...) per repeat."""

    values: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    extras: dict[str, list[float]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)

    def add(self, value: float, extras: dict[str, float | None] | None = None, notes: Iterable[str] = ()) -> None:
        self.values.append(value)
        for name, extra in (extras or {}).items():
            if extra is not None:
                self.extras.setdefault(name, []).append(extra)
        self.notes.update(notes)

    def fail(self, reason: str) -> None:
        self.failures.append(reason)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def extra(self, name: str) -> float | None:
        values = self.extras.get(name)
        return statistics.median(values) if values else None

    def to_json(self) -> dict[str, object]:
        return {
            "median": self.median,
            "values": self.values,
            "failures": self.failures,
            "extras": self.extras,
            "notes": dict(self.notes),
        }


# -- number formats ----------------------------------------------------------------------------------------
def rate(x: float) -> str:
    return f"{x / 1000:.3g}k" if x >= 1000 else f"{x:.0f}"


def ms(x: float) -> str:
    return f"{x / 1000:.3g} s" if x >= 1000 else f"{x:.3g} ms"


def us(x: float) -> str:
    return ms(x / 1000) if x >= 1000 else f"{x:.3g} µs"


def kb(x: float) -> str:
    return f"{x / 1024:.3g} KB"


def mb(x: float) -> str:
    return f"{x / 2**20:.4g} MB"


def seconds(x: float) -> str:
    return f"{x:.3g} s"


def pct(x: float) -> str:
    return f"{x:.3g}%"


def ratio(x: float) -> str:
    return f"{x:.0f}x" if x >= 10 else f"{x:.2g}x"


@dataclass
class Table:
    title: str
    #: what the figures are and which way is better, e.g. "deliveries/s, higher is better"
    metric: str
    fmt: Callable[[float], str]
    row_header: str
    #: column key -> label
    columns: dict[str, str]
    #: columns that other columns are compared with, in this order
    baselines: list[str]
    rows: dict[str, dict[str, Measurement]] = field(default_factory=dict)
    #: side figures shown in the details table: extras name -> format
    extras: dict[str, Callable[[float], str]] = field(default_factory=dict)
    note: str = ""
    #: columns shown for reference only, measured (and detailed) in another table
    borrowed: set[str] = field(default_factory=set)
    #: how a cell's repeats become its figure, and its name: the median, or e.g. (sum, "total") to count runs
    summary: tuple[Callable[[list[float]], float], str] = (statistics.median, "median")

    def cell(self, row: str, column: str) -> Measurement:
        return self.rows.setdefault(row, {}).setdefault(column, Measurement())

    def figure(self, m: Measurement) -> float | None:
        """The cell's figure over its repeats (see :attr:`summary`); None when no run gave one."""
        return self.summary[0](m.values) if m.values else None

    def render(self) -> str:
        out = [
            f"### {self.title}",
            "",
            f"{self.summary[1].capitalize()} {self.metric}"
            + ("; in brackets, the ratio to the baselines of this run." if self.baselines else "."),
            "",
        ]
        header = [self.row_header, *self.columns.values()]
        out += [_line(header), _line(["---"] * len(header))]
        for row, cells in self.rows.items():
            out.append(_line([row, *(self._render_cell(cells, column) for column in self.columns)]))
        if self.note:
            out += ["", self.note]
        return "\n".join(out)

    def _render_cell(self, cells: dict[str, Measurement], column: str) -> str:
        m = cells.get(column)
        if m is None:
            return "—"
        value = self.figure(m)
        if value is None:
            return "failed" if m.failures else "—"
        ratios = []
        for base in self.baselines:
            b = cells.get(base)
            if base != column and b is not None and (against := self.figure(b)):
                ratios.append(f"{ratio(value / against)} {base}")
        text = self.fmt(value)
        if ratios:
            text += f" ({', '.join(ratios)})"
        if m.failures:
            text += f" [{len(m.failures)} of {len(m.failures) + len(m.values)} runs failed]"
        return text

    def render_details(self) -> str:
        header = [self.row_header, "server", self.summary[1], "min-max", "runs ok", *self.extras, "notes"]
        out = [_line(header), _line(["---"] * len(header))]
        for row, cells in self.rows.items():
            for column, m in cells.items():
                if column in self.borrowed:
                    continue
                spread = f"{self.fmt(min(m.values))}-{self.fmt(max(m.values))}" if m.values else "—"
                extras = [
                    fmt(value) if (value := m.extra(name)) is not None else "—" for name, fmt in self.extras.items()
                ]
                notes = [f"{text} (x{n})" if n > 1 else text for text, n in m.notes.items()]
                notes += [f"failed: {reason}" for reason in dict.fromkeys(m.failures)]
                out.append(
                    _line(
                        [
                            row,
                            self.columns[column],
                            self.fmt(figure) if (figure := self.figure(m)) is not None else "—",
                            spread,
                            f"{len(m.values)}/{len(m.values) + len(m.failures)}",
                            *extras,
                            "; ".join(notes).replace("|", "/").replace("\n", " ")[:600],
                        ]
                    )
                )
        return "\n".join(out)

    def to_json(self) -> dict[str, object]:
        return {
            "title": self.title,
            "metric": self.metric,
            "columns": self.columns,
            "baselines": self.baselines,
            "rows": {row: {c: m.to_json() for c, m in cells.items()} for row, cells in self.rows.items()},
        }


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
