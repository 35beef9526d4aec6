"""Sweeping expired sessions: ``manage.py expire_push_sessions`` against Django's ``clearsessions``.

Per database (SQLite file, PostgreSQL on 127.0.0.1:5432) and number of expired rows, the data is built once:
N expired sessions (``expire_date`` spread over the last 30 days, inserted oldest first) and :data:`LIVE` live ones
(expiring in 1 to 15 days), random 32-character keys of Django's alphabet, and one realistic encoded session (an
authenticated user's) as everyone's ``session_data``. Before every measured command it is restored identically:
SQLite copies a template file, PostgreSQL clones a template database (``CREATE DATABASE ... TEMPLATE``, after
``VACUUM ANALYZE``: the same planner statistics for every command).

Measured per repeat, each a real ``python testproject/manage.py <command>`` process:

- ``clearsessions`` with :mod:`bench.settings_sweep_plain`: Django without the plugin, the baseline;
- ``clearsessions`` with :mod:`bench.settings_sweep` (the plugin installed: its ``post_delete`` receiver makes
  Django load every row before deleting it, and broadcasts the closes per 1,000 when the transaction commits);
- ``expire_push_sessions`` with :mod:`bench.settings_sweep` (deletes in batches and tells every hub after each
  commit; each hub then checks the sessions of its own connections).

Wall time of the whole process (start-up and system checks included) and its peak RSS (``ru_maxrss`` from
``wait4``, in a small launcher process: forked from a big parent, or spawned with vfork, a child's ``ru_maxrss``
starts at the parent's RSS). After each command: no expired row left, every live row still there. The plugin
runs broadcast through a private Redis to one django-stomp-push server holding one STOMP connection, so its hub is
in the hubs group and every broadcast is a real delivery: the broadcasts are counted in Redis, the hub must drain
them, and the connection must still answer afterwards.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..databases import django_env, pg_connect, pg_env, pg_unreachable
from ..harness import Bench
from ..report import Table, mb, seconds
from ..servers import LAYERS, REPO
from . import Scenario

PLUGIN_SETTINGS = "bench.settings_sweep"
PLAIN_SETTINGS = "bench.settings_sweep_plain"
MANAGE = str(REPO / "testproject" / "manage.py")

#: live sessions in every data set: none may be deleted
LIVE = 10_000
#: keys per close broadcast, for expire_push_sessions and for the plugin's post_delete receiver alike
BATCH = 1_000
#: 0: the commands' fixed cost (start-up, system checks, connections)
FULL_SIZES = (0, 100_000, 1_000_000)
SMOKE_SIZE = 2_000
DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
TARGET_RATIO = 1.5
TARGET_RSS_MB = 150

PG_TEMPLATE = "stomp_push_bench_template"
PG_RUN = "stomp_push_bench_run"

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"  # django.contrib.sessions' VALID_KEY_CHARS
SEED = 20_240_601
EXPIRED_SPAN = timedelta(days=30)

COLUMNS = {
    "clearsessions": "clearsessions, no plugin (Django)",
    "clearsessions_plugin": "clearsessions, plugin installed",
    "expire_push_sessions": "expire_push_sessions",
}
#: column -> (settings module, management command, broadcasts through Redis)
COMMANDS = {
    "clearsessions": (PLAIN_SETTINGS, "clearsessions", False),
    "clearsessions_plugin": (PLUGIN_SETTINGS, "clearsessions", True),
    "expire_push_sessions": (PLUGIN_SETTINGS, "expire_push_sessions", True),
}
EXTRAS = {"CPU (user+sys)": seconds, "broadcasts": lambda x: f"{x:.0f}", "hub drained after": seconds}

#: migrates the database and prints the session_data every row gets: an authenticated user's session
PREPARE = """
import django
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.utils.crypto import salted_hmac

call_command("migrate", interactive=False, verbosity=0)
print(SessionStore().encode({
    SESSION_KEY: "1",
    BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
    HASH_SESSION_KEY: salted_hmac("bench", "pbkdf2_sha256$password", algorithm="sha256").hexdigest(),
}))
"""

#: runs argv[2:] as a child with stdout/stderr to argv[1] and prints its wall time and rusage. A small process of
#: its own: ru_maxrss of a child forked (or vforked) from a big process starts at the parent's RSS.
LAUNCHER = """
import json, os, sys, time
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
print(json.dumps({"wall": wall, "maxrss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime,
                  "exit": os.waitstatus_to_exitcode(status)}))
"""


class SweepFailed(RuntimeError):
    """A command failed or left the wrong rows: the cell fails with this reason."""


@dataclass
class Outcome:
    wall: float
    maxrss: int
    cpu: float
    extras: dict[str, float] = field(default_factory=dict)


def _prepare(env: dict[str, str]) -> str:
    """Migrate the database of ``env``; the encoded session_data of the rows."""
    done = subprocess.run(
        [sys.executable, "-c", PREPARE], env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode:
        raise SweepFailed(f"migrate failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return done.stdout.strip().splitlines()[-1]


def _rows(expired: int, cutoff: datetime) -> Iterator[tuple[str, str]]:
    """(session_key, expire_date as naive UTC text) in insertion order: expired, oldest first, then the live ones.

    The text is ``str(datetime)``, as Django writes it to SQLite (which compares it as text)."""
    rng = random.Random(SEED)
    for i in range(expired):
        at = cutoff - timedelta(minutes=1) - EXPIRED_SPAN * (expired - i) / expired
        yield "".join(rng.choices(ALPHABET, k=32)), str(at)
    for i in range(LIVE):
        at = cutoff + timedelta(days=1) + timedelta(days=14) * i / LIVE
        yield "".join(rng.choices(ALPHABET, k=32)), str(at)


class SqliteData:
    """A template file built once; each command gets a fresh copy of it."""

    def __init__(self, workdir: Path) -> None:
        self.template = workdir / "template.sqlite3"
        self.db = workdir / "sweep.sqlite3"
        self.cutoff = ""

    def env(self) -> dict[str, str]:
        return {"DJANGO_DB_PATH": str(self.db)}

    def build(self, expired: int) -> None:
        session_data = _prepare(django_env(PLUGIN_SETTINGS, {"DJANGO_DB_PATH": str(self.template)}))
        cutoff = datetime.now(timezone.utc).replace(tzinfo=None)
        self.cutoff = cutoff.isoformat(" ", "microseconds")
        with contextlib.closing(sqlite3.connect(self.template)) as db, db:
            db.executemany(
                "INSERT INTO django_session (session_key, session_data, expire_date) VALUES (?, ?, ?)",
                ((key, session_data, at) for key, at in _rows(expired, cutoff)),
            )
        _check_built(self.counts(self.template), expired)

    def restore(self) -> None:
        for stale in (self.db, self.db.with_name(self.db.name + "-journal")):
            stale.unlink(missing_ok=True)
        shutil.copyfile(self.template, self.db)
        with open(self.db, "rb+") as copy:  # every command starts with the same clean page cache state
            os.fsync(copy.fileno())

    def counts(self, path: Path | None = None) -> tuple[int, int]:
        """(rows, rows expiring after the cutoff) in the copy (or ``path``)."""
        with contextlib.closing(sqlite3.connect(path or self.db)) as db:
            total, live = db.execute(
                "SELECT count(*), coalesce(sum(expire_date > ?), 0) FROM django_session", (self.cutoff,)
            ).fetchone()
        return total, live

    def close(self) -> None:
        for path in (self.template, self.db, self.db.with_name(self.db.name + "-journal")):
            path.unlink(missing_ok=True)


class PostgresData:
    """A template database built once; each command gets a fresh clone of it."""

    def __init__(self) -> None:
        self.cutoff = datetime.now(timezone.utc)

    def env(self, name: str = PG_RUN) -> dict[str, str]:
        return pg_env(name)

    def _drop(self, conn, name: str) -> None:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def build(self, expired: int) -> None:
        with pg_connect("postgres") as conn:
            self._drop(conn, PG_RUN)
            self._drop(conn, PG_TEMPLATE)
            conn.execute(f'CREATE DATABASE "{PG_TEMPLATE}"')
        session_data = _prepare(django_env(PLUGIN_SETTINGS, self.env(PG_TEMPLATE)))
        cutoff = datetime.now(timezone.utc).replace(tzinfo=None)
        self.cutoff = cutoff.replace(tzinfo=timezone.utc)
        with pg_connect(PG_TEMPLATE) as conn:
            with (
                conn.cursor() as cur,
                cur.copy("COPY django_session (session_key, session_data, expire_date) FROM STDIN") as copy,
            ):
                chunk: list[str] = []
                for key, at in _rows(expired, cutoff):
                    chunk.append(f"{key}\t{session_data}\t{at}+00\n")
                    if len(chunk) >= 10_000:
                        copy.write("".join(chunk))
                        chunk = []
                copy.write("".join(chunk))
            conn.execute("VACUUM ANALYZE django_session")
        _check_built(self.counts(PG_TEMPLATE), expired)

    def restore(self) -> None:
        with pg_connect("postgres") as conn:
            self._drop(conn, PG_RUN)
            conn.execute(f'CREATE DATABASE "{PG_RUN}" TEMPLATE "{PG_TEMPLATE}" STRATEGY FILE_COPY')
            conn.execute("CHECKPOINT")

    def counts(self, name: str = PG_RUN) -> tuple[int, int]:
        """(rows, rows expiring after the cutoff) in the clone (or database ``name``)."""
        with pg_connect(name) as conn:
            total, live = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE expire_date > %s) FROM django_session", (self.cutoff,)
            ).fetchone()
        return total, live

    def close(self) -> None:
        with pg_connect("postgres") as conn:
            self._drop(conn, PG_RUN)
            self._drop(conn, PG_TEMPLATE)


def _check_built(counts: tuple[int, int], expired: int) -> None:
    if counts != (expired + LIVE, LIVE):
        raise SweepFailed(f"the data set has {counts[0]} rows, {counts[1]} live: {expired + LIVE} and {LIVE} expected")


@contextlib.contextmanager
def data_set(bench: Bench, database: str, expired: int, workdir: Path) -> Iterator[SqliteData | PostgresData]:
    """The data for ``expired`` rows on ``database``, built once; removed on exit, failed or not."""
    data = SqliteData(workdir) if database == "sqlite" else PostgresData()
    try:
        data.build(expired)
        yield data
    finally:
        try:
            data.close()
        except Exception as exc:
            bench.log(f"  sweep: could not remove the {DATABASES[database]} data: {type(exc).__name__}: {exc}")


def launch(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> dict[str, float]:
    """Run ``argv`` in the launcher: its wall time, ``maxrss_kib``, CPU and exit status."""
    launcher = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", LAUNCHER, str(log), *argv],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    try:
        out, _ = launcher.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, 9)
        launcher.communicate()
        raise SweepFailed(f"still running after {timeout:.0f} s (killed)") from None
    if launcher.returncode:
        raise SweepFailed(f"the launcher failed with status {launcher.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


class Listener:
    """One django-stomp-push server on the bench's Redis with one open STOMP connection: its hub gets the closes."""

    GROUP_KEY = "asgi:group:stomp_push.hubs"
    HUB_KEYS = "asgistomp_push.hub.*"

    def __init__(self, url: str, redis_port: int) -> None:
        import redis
        from websockets.sync.client import connect

        host = url.split("/")[2]
        self.ws = connect(url, subprotocols=["v12.stomp"], origin=f"http://{host}", open_timeout=30)
        self.ws.send("CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\x00")
        frame = self.ws.recv(timeout=30)
        if not str(frame).startswith("CONNECTED"):
            raise SweepFailed(f"STOMP CONNECT refused: {str(frame)[:80]!r}")
        self.redis = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=10)
        deadline = time.monotonic() + 10
        while not self.redis.zcard(self.GROUP_KEY):
            if time.monotonic() > deadline:
                raise SweepFailed("the server's hub did not join the hubs group")
            time.sleep(0.05)
        self.redis.config_resetstat()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        with contextlib.suppress(Exception):
            self.redis.close()

    def after(self, timeout: float = 60.0) -> tuple[int, int, float]:
        """(messages sent to the hub, messages it received, seconds it took to drain them after the command).

        Counted in Redis's command statistics (reset when the hub had joined): channels-redis's group_send adds a
        message to a channel with ZADD + EXPIRE, and its receive backs the message up with one more ZADD; nothing
        else here calls EXPIRE (group joins did, before the reset).
        """
        started = time.monotonic()
        while any(self.redis.zcard(key) for key in self.redis.scan_iter(self.HUB_KEYS)):
            if time.monotonic() - started > timeout:
                raise SweepFailed(f"the hub had not drained its channel {timeout:.0f} s after the command")
            time.sleep(0.05)
        drained = time.monotonic() - started
        stats = self.redis.info("commandstats")
        sent = int(stats.get("cmdstat_expire", {}).get("calls", 0))
        received = int(stats.get("cmdstat_zadd", {}).get("calls", 0)) - sent
        # Still connected and served: a subscription with a receipt must be answered.
        self.ws.send("SUBSCRIBE\nid:after\ndestination:/topic/sweep-bench\nreceipt:after\n\n\x00")
        try:
            frame = str(self.ws.recv(timeout=10))
        except Exception as exc:
            raise SweepFailed(f"the STOMP connection did not survive the sweep: {type(exc).__name__}: {exc}") from None
        if not frame.startswith("RECEIPT"):
            raise SweepFailed(f"the STOMP connection got {frame[:60]!r} instead of a RECEIPT after the sweep")
        return sent, received, drained


def measure(
    bench: Bench, data: SqliteData | PostgresData, expired: int, column: str, log: Path, workdir: Path
) -> Outcome:
    settings, command, broadcasts = COMMANDS[column]
    timeout = 120 + expired / 250
    data.restore()
    with contextlib.ExitStack() as stack:
        extra = data.env()
        listener = None
        if broadcasts:
            redis = bench._redis_server()
            # a fresh server (and a flushed Redis) per command; its own database is never used
            server_db = {"DJANGO_DB_PATH": str(workdir / "server.sqlite3")}
            deployment = stack.enter_context(bench.server("ours", "redis", server_db))
            listener = Listener(deployment.urls[0], redis.port)
            stack.callback(listener.close)
            extra = {**extra, "REDIS_URL": redis.url, "REDIS_LAYER": LAYERS["redis"].kind}  # the server's layer
        result = launch([sys.executable, MANAGE, command], django_env(settings, extra), log, timeout)
        if result["exit"]:
            raise SweepFailed(f"{command} exited with {result['exit']}: {_last_line(log)} (log: {log.name})")
        outcome = Outcome(wall=result["wall"], maxrss=int(result["maxrss_kib"]) * 1024, cpu=result["cpu"])
        outcome.extras["CPU (user+sys)"] = result["cpu"]
        if listener is not None:
            sent, received, drained = listener.after()
            outcome.extras["broadcasts"] = received
            outcome.extras["hub drained after"] = drained
            if command == "expire_push_sessions":
                # one notice per commit that deleted rows (commits come every few seconds)
                low, high = (1, 1 + math.ceil(result["wall"] / 3)) if expired else (0, 0)
            else:
                low = high = math.ceil(expired / BATCH)
            if not low <= sent <= high or received != sent:
                expected = str(low) if low == high else f"{low} to {high}"
                raise SweepFailed(f"{sent} broadcasts sent to the hub and {received} received, {expected} expected")
    total, live = data.counts()
    if (total, live) != (LIVE, LIVE):
        raise SweepFailed(f"{total - live} expired rows left and {live} of {LIVE} live rows after {command}")
    if command == "expire_push_sessions":
        said = log.read_text(errors="replace")
        if f"Deleted {expired} expired sessions" not in said:
            raise SweepFailed(f"expire_push_sessions did not report {expired} deletions: {_last_line(log)}")
    return outcome


def run(bench: Bench) -> list[Table]:
    sizes = (SMOKE_SIZE,) if bench.smoke else FULL_SIZES
    databases = ["sqlite"] if bench.smoke else list(DATABASES)
    common = (
        f"Each command starts from an identical copy of the data: N expired sessions and {LIVE:,} live ones, which "
        "must all survive (checked after every command, as is that no expired row is left). expire_push_sessions "
        "runs with its default --batch-size (50,000) and sends every hub one notice per commit (each hub then "
        "checks the sessions of its own connections; broadcasts counts those notices); with the "
        f"plugin installed, clearsessions's deletes are broadcast by the plugin's post_delete receiver, {BATCH:,} "
        "keys per message. Plugin runs broadcast through "
        "channels-redis to one django-stomp-push server holding one STOMP connection (checked open afterwards). "
        "With 0 expired sessions, a command costs its start-up: Python, Django, the apps and the system checks."
    )

    def table(title: str, metric: str, fmt, note: str, extras=None) -> Table:
        return Table(
            title=f"Sweeping expired sessions: {title}",
            metric=metric,
            fmt=fmt,
            row_header="database, expired sessions",
            columns=dict(COLUMNS),
            baselines=["clearsessions"],
            extras=extras or {},
            note=f"{common} {note}",
        )

    time_table = table(
        "time",
        "wall time of the whole manage.py process, s (lower is better)",
        seconds,
        "Wall time of the whole `manage.py` process: Python and Django start-up and system checks included. CPU "
        "(details) is the command process's only (not the database server's). Target: expire_push_sessions ≤ "
        f"{TARGET_RATIO}x clearsessions without the plugin.",
        EXTRAS,
    )
    rss_table = table(
        "peak memory",
        "peak RSS of the manage.py process (lower is better)",
        mb,
        f"Peak RSS: ru_maxrss of the command process (wait4). Target: expire_push_sessions ≤ {TARGET_RSS_MB} MB at "
        "1,000,000 expired sessions.",
    )
    unreachable = pg_unreachable() if "postgresql" in databases else None
    if unreachable:
        bench.failures += 1
        bench.log(f"  sweep: {unreachable}")
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        for database in databases:
            for expired in sizes:
                row = f"{DATABASES[database]}, {expired:,} expired" + (" (fixed cost)" if not expired else "")
                if database == "postgresql" and unreachable:
                    for column in COLUMNS:
                        time_table.cell(row, column).fail(unreachable)
                        rss_table.cell(row, column).fail(unreachable)
                    continue
                _run_row(bench, database, expired, row, Path(tmp), time_table, rss_table)
    return [time_table, rss_table]


def _run_row(
    bench: Bench, database: str, expired: int, row: str, workdir: Path, time_table: Table, rss_table: Table
) -> None:
    label = f"sweep {database} {expired:,}"
    started = time.monotonic()
    try:
        with data_set(bench, database, expired, workdir) as data:
            bench.log(f"  {label}: data built in {time.monotonic() - started:.1f} s")
            for repeat in range(bench.repeats):
                columns = list(COLUMNS)
                shift = repeat % len(columns)  # a different order in each repeat: no column always goes first
                for column in columns[shift:] + columns[:shift]:
                    log = bench.logs / f"sweep-{database}-{expired}-{column}-{repeat + 1}.log"
                    try:
                        outcome = measure(bench, data, expired, column, log, workdir)
                    except Exception as exc:  # the cell fails, the others go on
                        reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SweepFailed) else str(exc)
                        bench.failures += 1
                        time_table.cell(row, column).fail(reason)
                        rss_table.cell(row, column).fail(reason)
                        bench.log(f"  {label} #{repeat + 1} {column}: failed: {reason}")
                        continue
                    time_table.cell(row, column).add(outcome.wall, outcome.extras)
                    rss_table.cell(row, column).add(outcome.maxrss)
                    bench.log(
                        f"  {label} #{repeat + 1} {column}: {seconds(outcome.wall)}, peak RSS {mb(outcome.maxrss)}, "
                        f"CPU {seconds(outcome.cpu)}"
                    )
    except Exception as exc:  # building the data failed: every cell of the row not measured yet fails
        reason = str(exc) if isinstance(exc, SweepFailed) else f"{type(exc).__name__}: {exc}"
        bench.failures += 1
        bench.log(f"  {label}: failed: {reason}")
        for column in COLUMNS:
            for table in (time_table, rss_table):
                if not table.cell(row, column).values:
                    table.cell(row, column).fail(reason)


SCENARIO = Scenario("sweep", "Sweeping expired sessions: expire_push_sessions against clearsessions", run, smoke=True)
