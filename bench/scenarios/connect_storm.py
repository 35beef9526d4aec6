"""Connect storm: N clients at once, each signed in with a session of its own, side by side with RabbitMQ Web-STOMP
and the bare websockets server.

Before the runs, users each with one signed-in session are written into a fresh database per engine (SQLite, and
PostgreSQL at 127.0.0.1:5432 in full runs), and django-stomp-push requires a valid session
(``bench/portable/signed_in_settings.py``): every client sends the cookie of its own session. Each client does the
WebSocket handshake, CONNECT and SUBSCRIBE with a receipt (see :mod:`bench.storm`); a client refused with ERROR
``server busy`` and close 1013 waits the ``retry-after`` (plus the client helper's jitter) and tries again, as
clients with the package's helper do, until subscribed or the ramp timeout. Every server's clients do so (only
django-stomp-push refuses). Measured:

- all at once (1,000 / 3,000 / 5,000 clients): the time until every client is subscribed, retries included (a
  run in which any client failed for good has no such time); the clients that failed for good by kind (TCP reset,
  handshake timeout, HTTP status, ERROR message, close code, still refused at the ramp timeout); the clients
  refused at their first attempt (and the refusals in all, in the details); whether the client connected before
  the storm, heart-beating every second, was closed (it must not be; its longest silence from the server in the
  details);
- 100 handshakes in flight (2,000 clients): connects/s.

django-stomp-push runs under each chosen ASGI server (daphne, daphne with a listen backlog of 1,024 through its
endpoint string, uvicorn), on channels-redis when the run's layers include it (else the in-memory layer). The
bare server and RabbitMQ ignore the cookies, so they run once per size, shown in every database's tables.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import storm
from ..databases import COOKIE, SESSION_DATABASES, SessionDatabase, open_sessions
from ..harness import Bench, RunResult
from ..report import Table, ms, pct, rate, seconds
from . import Scenario
from .common import layer_label


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    rate_clients: int
    in_flight: int
    databases: tuple[str, ...]


FULL = Plan(sizes=(1_000, 3_000, 5_000), rate_clients=2_000, in_flight=100, databases=("sqlite", "postgresql"))
SMOKE = Plan(sizes=(30,), rate_clients=30, in_flight=10, databases=("sqlite",))
BASELINES = ["rabbitmq", "websockets"]


def count(x: float) -> str:
    return f"{x:,.0f}"


REFUSED = {"clients subscribed": count, "first attempts refused": count, "refusals (1013)": count}
EXTRAS = {
    **REFUSED,
    "median client wait": ms,
    "p99 client wait": ms,
    "connects/s": rate,
    "sentinel's longest silence": ms,
    "server CPU": pct,
    "load generator CPU": pct,
    "redis CPU": pct,
    "other CPU": pct,
}


def closed_runs(x: float) -> str:
    return "not closed" if x == 0 else f"closed in {x:,.0f} run(s)"


class StormTables:
    """The tables of one session database: time until all subscribed, failed clients, whether the heart-beating
    client was closed, connects/s in flight."""

    def __init__(self, database: str, columns: list[storm.Column], layer: str, plan: Plan) -> None:
        where = f"{SESSION_DATABASES[database]} sessions, {layer_label(layer)}"
        common = (
            "Each client sends the cookie of a signed-in session of its own (django-stomp-push refuses a client "
            "without one), then does the WebSocket handshake, CONNECT and SUBSCRIBE with a receipt; an attempt gives "
            f"up after {storm.CONNECT_TIMEOUT_S} s. A client refused (ERROR server busy, close 1013) tries again as "
            "the package's client helper would, after the retry-after plus up to "
            f"{storm.RETRY_AFTER_JITTER_MS:,} ms, until subscribed or until an attempt would start past the ramp "
            "timeout; any other failure is final. The bare server and RabbitMQ ignore cookies and refuse no one. A "
            f"client connected before the storm heart-beats every {storm.SENTINEL_HEARTBEAT_MS} ms throughout it: "
            "its longest silence from the server is in the details, and a note says when it was closed. CPU: during "
            "the storm" + ("; other CPU includes PostgreSQL's." if database == "postgresql" else ".")
        )

        def table(title: str, metric: str, fmt, note: str, extras=None, **options) -> Table:
            options.setdefault("baselines", [b for b in BASELINES if any(c.key == b for c in columns)])
            return Table(
                title=f"Connect storm, {where}: {title}",
                metric=metric,
                fmt=fmt,
                row_header="clients",
                columns={c.key: c.label for c in columns},
                extras=extras or {},
                note=f"{common} {note}",
                **options,
            )

        self.time = table(
            "all at once, time until every client is subscribed",
            "seconds from the first client's start to the last one's RECEIPT, retries after a refusal included "
            "(lower is better)",
            seconds,
            "A run in which any client failed for good has no time: see the clients that failed for good. A "
            "client's wait (details) runs from its first attempt to its RECEIPT. Target: 3,000 clients with none "
            "failing on daphne and uvicorn, in no more time than RabbitMQ.",
            EXTRAS,
        )
        self.failures = table(
            "all at once, clients that failed for good",
            "clients never subscribed, retries after a refusal included (lower is better; 0 is the target)",
            count,
            "By kind in the details: TCP reset, handshake timeout, HTTP status, ERROR frame and its message, close, "
            "still refused at the ramp timeout; there too, the clients subscribed and the refusals.",
            REFUSED,
        )
        self.refused = table(
            "all at once, clients refused at their first attempt",
            "clients whose first attempt was refused with ERROR server busy and close 1013, each then retrying "
            "(lower is better)",
            count,
            "Those that then got in count as subscribed: the clients that failed for good are in the table above. "
            "Refusals in all (every refused attempt) in the details.",
            REFUSED,
            baselines=[],
        )
        self.sentinel = table(
            f"all at once, the client heart-beating every {storm.SENTINEL_HEARTBEAT_MS} ms",
            "runs in which the server closed the client connected before the storm (0 is the target)",
            closed_runs,
            "Its close (code and ERROR message) and its longest silence from the server are in the details.",
            {"sentinel's longest silence": ms},
            baselines=[],
            summary=(sum, "total"),
        )
        self.rate = table(
            f"{plan.in_flight} handshakes in flight, connects/s",
            "clients subscribed per second (higher is better; target ≥ 1,000/s per process)",
            rate,
            f"{plan.in_flight} clients connecting at any time, each starting when another is subscribed.",
            EXTRAS,
        )

    def all(self) -> list[Table]:
        return [self.time, self.failures, self.refused, self.sentinel, self.rate]

    def fail(self, row: str, column: str, storming: bool, reason: str) -> None:
        for table in (self.time, self.failures, self.refused, self.sentinel) if storming else (self.rate,):
            table.cell(row, column).fail(reason)

    def record(self, row: str, column: str, storming: bool, outcome: storm.Outcome, result: RunResult) -> None:
        extras, notes = outcome.extras(result), outcome.notes()
        if not storming:
            self.rate.cell(row, column).add(outcome.connects_per_s, extras, notes)
            return
        self.failures.cell(row, column).add(outcome.failed, outcome.refused(), notes)
        self.refused.cell(row, column).add(outcome.refused_first, outcome.refused())
        if outcome.sentinel_seen:
            closed = [note for note in notes if note.startswith("the client heart-beating")]
            silence = {"sentinel's longest silence": outcome.sentinel_silence_ms}
            self.sentinel.cell(row, column).add(1.0 if outcome.sentinel_closed else 0.0, silence, closed)
        else:
            self.sentinel.cell(row, column).fail("no client connected before the storm")
        if outcome.all_subscribed:
            self.time.cell(row, column).add(outcome.ramp_s, extras, notes)
        else:
            self.time.cell(row, column).fail(storm.describe_failures(outcome.failed, outcome.clients, outcome.errors))

    def borrow(self, other: StormTables, keys: list[str]) -> None:
        """Show ``other``'s cells of the columns ``keys`` (servers without sessions) for reference."""
        for mine, theirs in zip(self.all(), other.all(), strict=True):
            for row, cells in theirs.rows.items():
                for key in keys:
                    if key in cells:
                        mine.cell(row, key)  # keeps the row order
                        mine.rows[row][key] = cells[key]
            mine.borrowed.update(keys)


@dataclass
class Sessions:
    """Signed-in sessions of one database for the clients (none for servers without sessions)."""

    db: SessionDatabase | None = None
    #: Cookie headers; the first is the sentinel's
    cookies: list[str] = field(default_factory=list)
    #: why there are none
    unavailable: str | None = None


def _sessions(bench: Bench, database: str, workdir: Path, needed: int, stack: contextlib.ExitStack) -> Sessions:
    """``needed`` signed-in sessions in a fresh ``database`` (removed when ``stack`` closes)."""
    label = SESSION_DATABASES[database]
    try:
        db = open_sessions(database, workdir)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return _unavailable(bench, f"{label} is unavailable: {type(exc).__name__}: {first}")
    stack.callback(_close, bench, db)
    try:
        keys = db.create_sessions(needed)
    except Exception as exc:
        return _unavailable(bench, f"{type(exc).__name__}: {exc}")
    bench.log(f"  connect_storm: {len(keys):,} signed-in sessions in {label}")
    return Sessions(db, [f"{COOKIE}={key}" for key in keys])


def _unavailable(bench: Bench, reason: str) -> Sessions:
    """No sessions, and why (the cells of this database's servers fail with it)."""
    bench.failures += 1
    bench.log(f"  connect_storm: {reason}")
    return Sessions(unavailable=reason)


def _close(bench: Bench, db: SessionDatabase) -> None:
    try:
        db.close()
    except Exception as exc:
        bench.log(f"  connect_storm: could not remove the {db.label} sessions: {type(exc).__name__}: {exc}")


def run(bench: Bench) -> list[Table]:
    plan = SMOKE if bench.smoke else FULL
    columns = storm.columns(bench)
    layer = "redis" if "redis" in bench.layers else "memory"
    databases = plan.databases if any(c.signed_in for c in columns) else plan.databases[:1]
    tables = {db: StormTables(db, columns, layer, plan) for db in databases}
    #: (clients, in flight, row, a storm (all at once) or the connects/s run)
    runs = [(n, n, f"{n:,}", True) for n in bench.sizes or plan.sizes]
    runs.append((plan.rate_clients, plan.in_flight, f"{plan.rate_clients:,}, {plan.in_flight} in flight", False))
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp, contextlib.ExitStack() as stack:
        needed = max(n for n, *_ in runs) + 1  # + the sentinel
        sessions = {db: _sessions(bench, db, Path(tmp), needed, stack) for db in databases}
        for repeat in range(bench.repeats):
            shift = repeat % len(columns)  # a different server goes first in each repeat
            for clients, in_flight, row, storming in runs:
                for column in columns[shift:] + columns[:shift]:
                    for db in databases if column.signed_in else databases[:1]:
                        signed_in = sessions[db] if column.signed_in else Sessions()
                        if signed_in.unavailable:
                            tables[db].fail(row, column.key, storming, signed_in.unavailable)
                            continue
                        where = f"#{repeat + 1} {row} {column.key}" + (f" {db}" if column.signed_in else "")
                        spec = Run(column, clients, in_flight, row, storming, f"connect_storm {where}")
                        _measure(bench, tables[db], spec, layer, signed_in)
    sessionless = [c for c in columns if not c.signed_in]
    for db in databases[1:]:
        tables[db].borrow(tables[databases[0]], [c.key for c in sessionless])
        if sessionless:
            names = " and ".join(c.label for c in sessionless)
            which = "columns repeat" if len(sessionless) > 1 else "column repeats"
            for table in tables[db].all():
                table.note += f" The {names} {which} the {SESSION_DATABASES[databases[0]]} tables' runs."
    return [table for db in databases for table in tables[db].all()]


@dataclass(frozen=True)
class Run:
    """One storm to measure (or one connects/s run: ``storming`` false)."""

    column: storm.Column
    clients: int
    in_flight: int
    row: str
    storming: bool
    label: str


def _measure(bench: Bench, tables: StormTables, run: Run, layer: str, sessions: Sessions) -> None:
    cookies = sessions.cookies
    config = storm.load(run.clients, run.in_flight, cookies[1:] or None, cookies[0] if cookies else None)
    column = run.column
    result = bench.measure(
        column.target,
        layer if column.signed_in else "memory",
        config,
        storm.timeout(config),
        server=column.server,
        app=column.app,
        env=sessions.db.env() if sessions.db else None,
    )
    if result.error and not result.ready:
        tables.fail(run.row, column.key, run.storming, result.error)
        bench.log(f"  {run.label}: failed: {result.error}")
        return
    outcome = storm.Outcome.of(result, run.clients)
    tables.record(run.row, column.key, run.storming, outcome, result)
    if bench.smoke and (outcome.failed or outcome.sentinel_closed):
        bench.failures += 1  # a handful of clients must all get in, and not cost the sentinel its connection
    cpu = f"server {result.server_cpu_pct or 0:.0f}% CPU, load generator {result.loadgen_cpu_pct or 0:.0f}%"
    summary = f"{outcome.connected:,} subscribed in {outcome.ramp_s:.2f} s ({outcome.connects_per_s:.0f}/s; {cpu})"
    if outcome.refusals:
        summary += f"; {outcome.refused_first:,} refused at first, {outcome.refusals:,} refusals in all"
    bench.log(f"  {run.label}: {summary}" + "".join(f"; {note}" for note in outcome.notes()))


SCENARIO = Scenario("connect_storm", "Connect storm: signed-in clients all at once", run)
