"""Deploy restart: one of two servers drained (SIGTERM) and started again under N clients that reconnect as the
package's client helper does, while a pusher pushes a numbered message every 10 ms to the topic they all follow.

Two django-stomp-push processes share one Redis (channels-redis) and one SQLite database of signed-in sessions;
each client sends the cookie of a session of its own and subscribes to one topic. The clients are loadgen.mjs's
"reconnect" mode: the helper's own ``describeClose`` and ``backoffDelay`` decide each delay (``retry-after`` of
``server restarting`` plus up to 1 s of jitter; full-jitter backoff after a close without advice), and a reconnect
goes to either server, or to the other one while the first refuses the TCP connection (a load balancer in front).
A Python process pushes ``seq:wall-ms:`` with ``push()`` every 10 ms throughout. Once every client is subscribed,
server A gets SIGTERM, is waited for, and is started again on the same port. Measured per ASGI server:

- the time from the SIGTERM until every client is subscribed again (target: ``DRAIN_WINDOW`` + 5 s);
- the clients left in a terminal state (``reconnect: never``; must be 0), and those not subscribed at the end;
- the pushes lost per client: while subscribed (a gap between two pushes on one connection, or pushes missing at
  the end on a connection subscribed for a second at least; must be 0) apart from those sent while it was away
  (expected: lost by design);
- the load generator's CPU (from the first client subscribed to the end), and Redis's.

``--smoke``: 30 clients, a 2 s ``DRAIN_WINDOW``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import loadgen, procstat, storm
from ..databases import COOKIE, SETTINGS, SqliteSessions, django_env
from ..harness import Bench
from ..processes import Process, ServerFailed
from ..report import Table, pct, seconds
from ..servers import ASGI_SERVERS, LAYERS, REPO, TARGETS
from . import Scenario


@dataclass(frozen=True)
class Plan:
    clients: int
    drain_window: float
    #: seconds of pushes to everyone before the SIGTERM, and after every client is back before the pusher stops
    settle_s: float
    hold_s: float


FULL = Plan(clients=3_000, drain_window=10.0, settle_s=3.0, hold_s=3.0)
SMOKE = Plan(clients=30, drain_window=2.0, settle_s=1.0, hold_s=1.0)
#: 10 pushes/s to every client: 30,000 deliveries/s at full size, a steady load 2 cores carry beside the restart
#: (a push every 10 ms would be 300,000/s, and the run would measure saturation instead of the drain)
PUSH_EVERY_S = 0.100
DESTINATION = "/topic/bench"
#: two server processes on channels-redis's pub/sub layer (the recommended one)
LAYER = "pubsub-2p"
#: the time the pusher's last pushes have to arrive before the clients count what they lost
DELIVERY_GRACE_S = 1.5
#: how long after DRAIN_WINDOW the run waits for every client to be back (a slower recovery is measured; none fails)
RESUBSCRIBE_MARGIN_S = 60.0
#: openings in flight during the initial ramp (not measured)
RAMP_IN_FLIGHT = 100

#: The pusher: ``python -c PUSHER destination every_s``; prints "ready", then on SIGTERM one JSON line.
PUSHER = """
import json, signal, sys, time
import django
django.setup()
from django_stomp_push import push

destination, every = sys.argv[1], float(sys.argv[2])
running = True
def stop(*_):
    global running
    running = False
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
seq = failed = 0
errors, late, start, due = {}, 0.0, time.monotonic(), 0
while running:
    wait = start + due * every - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    else:
        late = max(late, -wait)
    due += 1
    try:
        push(destination, f"{seq}:{time.time() * 1000:.0f}:")
    except Exception as exc:  # not sent (push cancels what times out): the next push takes the same number
        failed += 1
        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        continue
    seq += 1
print(json.dumps({"last_seq": seq - 1, "stopped_at_ms": time.time() * 1000, "failed": failed, "errors": errors,
                  "max_late_ms": late * 1000}), flush=True)
"""


def count(x: float) -> str:
    return f"{x:,.0f}"


def mean(x: float) -> str:
    return f"{x:,.1f}"


@dataclass
class Outcome:
    """One run: the load generator's result, the pusher's, and the times around the restart."""

    result: dict[str, Any]
    pushed: dict[str, Any]
    resubscribed_s: float | None
    exited_s: float | None
    listening_s: float | None
    loadgen_cpu: float | None
    redis_cpu: float | None
    notes: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """What must not happen (a smoke run fails on any)."""
        r = self.result
        problems = [] if self.resubscribed_s is not None else ["not every client was subscribed again"]
        if r["terminal"]:
            problems.append(f"{r['terminal']} client(s) in a terminal state")
        if r["lost_subscribed"]:
            problems.append(f"{r['lost_subscribed']} push(es) lost while subscribed")
        if r["silent"]:
            problems.append(f"{r['silent']} subscribed client(s) received nothing")
        undrained = sum(n for kind, n in r["closes"].items() if not kind.startswith("1012 server restarting"))
        if undrained:
            problems.append(f"{undrained} close(s) other than 1012 server restarting")
        if r["duplicates"]:
            problems.append(f"{r['duplicates']} push(es) received twice or out of order")
        return problems

    def all_notes(self) -> list[str]:
        r = self.result
        kinds = ", ".join(f"{k} x{v:,}" for k, v in sorted(r["closes"].items(), key=lambda kv: -kv[1]))
        failed = ", ".join(f"{storm.failure_kind(k)} x{v:,}" for k, v in sorted(r["failures"].items()))
        notes = [*self.problems(), *self.notes]
        notes += [f"closes: {kinds}"] if kinds else []
        notes += [f"attempts that did not subscribe: {failed}"] if failed else []
        if self.pushed.get("failed"):
            notes.append(f"{self.pushed['failed']} push() call(s) failed at the pusher: {self.pushed['errors']}")
        return notes


class RestartTables:
    def __init__(self, bench: Bench, plan: Plan, layer: str) -> None:
        columns = {key: f"django-stomp-push, {ASGI_SERVERS[key].label}" for key in bench.asgi_servers}
        target = plan.drain_window + 5
        common = (
            f"Two django-stomp-push processes on {layer}; every client has a signed-in session of its own, "
            "subscribes to one topic and reconnects as the client helper does (retry-after plus up to 1 s of "
            "jitter, full-jitter backoff otherwise), to either server, or to the other one while the first refuses "
            f"(a load balancer). A push every {PUSH_EVERY_S * 1000:.0f} ms throughout; server A gets SIGTERM "
            f"(DRAIN_WINDOW {plan.drain_window:g} s) and is started again once it has exited. Load generator CPU: "
            "from the first client subscribed to the end."
        )

        def table(title: str, metric: str, fmt, note: str, extras) -> Table:
            return Table(
                title=f"Deploy restart: {title}",
                metric=metric,
                fmt=fmt,
                row_header="clients",
                columns=columns,
                baselines=[],
                extras=extras,
                note=f"{common} {note}",
            )

        self.time = table(
            "time until every client is subscribed again",
            f"seconds from the SIGTERM (lower is better; target ≤ DRAIN_WINDOW + 5 s = {target:g} s)",
            seconds,
            f"A run in which some client was not back within DRAIN_WINDOW + {RESUBSCRIBE_MARGIN_S:g} s has no time.",
            {
                "drained server exited": seconds,
                "restarted server listening": seconds,
                "reconnects": count,
                "load generator CPU": pct,
                "redis CPU": pct,
            },
        )
        self.terminal = table(
            "clients in a terminal state",
            "clients that stopped reconnecting (`reconnect: never`; 0 is the target)",
            count,
            "Details: the clients not subscribed at the end, and every close by code and ERROR message.",
            {"not subscribed at the end": count},
        )
        self.lost = table(
            "pushes lost while subscribed",
            "pushes missing on connections that were subscribed, all clients (0 is the target)",
            count,
            "Pushes sent while a client was away (after its close, before its next subscription) are lost by "
            "design: they are in the details, per client.",
            {
                "lost while away, mean per client away": mean,
                "lost while away, max per client": count,
                "lost while subscribed, max per client": count,
                "pushes sent": count,
                "load generator CPU": pct,
            },
        )

    def all(self) -> list[Table]:
        return [self.time, self.terminal, self.lost]

    def fail(self, row: str, column: str, reason: str) -> None:
        for t in self.all():
            t.cell(row, column).fail(reason)

    def record(self, row: str, column: str, outcome: Outcome) -> None:
        r, notes = outcome.result, outcome.all_notes()
        extras = {
            "drained server exited": outcome.exited_s,
            "restarted server listening": outcome.listening_s,
            "reconnects": r["reconnects"],
            "load generator CPU": outcome.loadgen_cpu,
            "redis CPU": outcome.redis_cpu,
        }
        if outcome.resubscribed_s is not None:
            self.time.cell(row, column).add(outcome.resubscribed_s, extras, notes)
        else:
            self.time.cell(row, column).fail("; ".join(notes))
        self.terminal.cell(row, column).add(
            r["terminal"], {"not subscribed at the end": r["clients"] - r["subscribed"]}
        )
        self.lost.cell(row, column).add(
            r["lost_subscribed"],
            {
                "lost while away, mean per client away": r["lost_away"] / max(1, r["away_clients"]),
                "lost while away, max per client": r["lost_away_max"],
                "lost while subscribed, max per client": r["lost_subscribed_max"],
                "pushes sent": r["last_seq"] + 1,
                "load generator CPU": outcome.loadgen_cpu,
            },
        )


def run(bench: Bench) -> list[Table]:
    plan = SMOKE if bench.smoke else FULL
    sizes = bench.sizes or [plan.clients]
    tables = RestartTables(bench, plan, "channels-redis")
    servers = list(bench.asgi_servers)
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        sessions = SqliteSessions(Path(tmp))
        try:
            cookies = [f"{COOKIE}={key}" for key in sessions.create_sessions(max(sizes))]
        except Exception as exc:
            bench.failures += 1
            bench.log(f"  deploy_restart: {type(exc).__name__}: {exc}")
            for clients in sizes:
                for server in servers:
                    tables.fail(f"{clients:,}", server, f"{type(exc).__name__}: {exc}")
            return tables.all()
        bench.log(f"  deploy_restart: {len(cookies):,} signed-in sessions in SQLite")
        for repeat in range(bench.repeats):
            shift = repeat % len(servers)  # a different server goes first in each repeat
            for clients in sizes:
                for server in servers[shift:] + servers[:shift]:
                    label = f"deploy_restart #{repeat + 1} {clients:,} {server}"
                    try:
                        outcome = _run_once(bench, server, cookies[:clients], sessions.env(), plan)
                    except (ServerFailed, loadgen.LoadgenFailed, OSError, TimeoutError) as exc:
                        bench.failures += 1
                        tables.fail(f"{clients:,}", server, f"{type(exc).__name__}: {exc}")
                        bench.log(f"  {label}: failed: {type(exc).__name__}: {exc}")
                        continue
                    tables.record(f"{clients:,}", server, outcome)
                    if bench.smoke and outcome.problems():
                        bench.failures += 1  # a handful of clients must all come back, and lose nothing subscribed
                    back = "never" if outcome.resubscribed_s is None else f"{outcome.resubscribed_s:.2f} s"
                    r = outcome.result
                    away = r["lost_away"] / max(1, r["away_clients"])
                    bench.log(
                        f"  {label}: all subscribed again after {back}; terminal {r['terminal']}, lost while "
                        f"subscribed {r['lost_subscribed']}, while away {away:.1f} per client away; load generator "
                        f"{outcome.loadgen_cpu or 0:.0f}% CPU" + "".join(f"; {note}" for note in outcome.all_notes())
                    )
        sessions.close()
    return tables.all()


class LoadRunner:
    """loadgen.mjs in a thread, its events in a queue, so that the scenario acts on them as they come."""

    def __init__(self, config: dict[str, Any], watch: dict[str, list[int]], log: Path, timeout: float) -> None:
        self.seen: dict[str, loadgen.Event] = {}
        self.error: BaseException | None = None
        self._events: queue.Queue[loadgen.Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(config, watch, log, timeout), daemon=True)
        self._thread.start()

    def _run(self, config: dict[str, Any], watch: dict[str, list[int]], log: Path, timeout: float) -> None:
        try:
            loadgen.run(config, watch, log, timeout, on_event=self._events.put)
        except BaseException as exc:
            self.error = exc
        finally:
            self._events.put(None)

    def wait_for(self, name: str, timeout: float) -> loadgen.Event | None:
        """The event ``name`` once it came (None after ``timeout``); raises what ended the load generator."""
        deadline = time.monotonic() + timeout
        while name not in self.seen:
            try:  # what already came is taken even when the time is up
                event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if event is None:
                self._events.put(None)  # the end, for later waits too
                raise self.error or loadgen.LoadgenFailed(f"the load generator ended before {name}")
            self.seen[event.name] = event
        return self.seen[name]

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def _run_once(bench: Bench, server: str, cookies: list[str], db_env: dict[str, str], plan: Plan) -> Outcome:
    # Every process on the same layer: the two servers, the pusher and the restarted server.
    settings = {"STOMP_PUSH_JSON": json.dumps({"DRAIN_WINDOW": plan.drain_window}), "REDIS_LAYER": LAYERS[LAYER].kind}
    env = {**db_env, **settings}
    clients = len(cookies)
    ramp_timeout = 60 + clients / 50
    waits = plan.settle_s + 30 + plan.drain_window + RESUBSCRIBE_MARGIN_S + plan.hold_s + DELIVERY_GRACE_S
    config = {
        "mode": "reconnect",
        "workers": bench.workers,
        "subscribers": clients,
        "destination": DESTINATION,
        "connect_concurrency": RAMP_IN_FLIGHT,
        "connect_timeout_s": storm.CONNECT_TIMEOUT_S,
        "ramp_timeout_s": ramp_timeout,
        "deadline_s": ramp_timeout + storm.CONNECT_TIMEOUT_S + waits + 60,
        "cookies": cookies,
    }
    with (
        bench.server("ours", LAYER, env, server=server, app=storm.SIGNED_IN_APP) as deployment,
        contextlib.ExitStack() as stack,
    ):
        assert deployment.redis is not None
        redis = deployment.redis
        config["urls"] = deployment.urls
        config["stop_file"] = str(bench.logs / f"{deployment.name}-stop.json")
        log = bench.logs / f"{deployment.name}-loadgen.log"
        runner = LoadRunner(config, {"redis": [redis.process.pid]}, log, float(config["deadline_s"]) + 30)
        stack.callback(_stop_loadgen, runner, Path(config["stop_file"]))
        if runner.wait_for("ready", ramp_timeout + storm.CONNECT_TIMEOUT_S + 30) is None:
            raise TimeoutError("the clients did not connect in time")
        pusher_env = django_env(SETTINGS, {**env, "REDIS_URL": redis.url})
        pusher = Pusher(pusher_env, bench.logs / f"{deployment.name}-pusher.log")
        stack.callback(pusher.stop)
        time.sleep(plan.settle_s)

        drained = deployment.processes[0]
        sigterm = time.monotonic()
        os.kill(drained.pid, signal.SIGTERM)
        notes: list[str] = []
        exited_s = _wait_exit(drained.popen, 30.0, sigterm, notes)
        port = urlsplit(deployment.urls[0]).port
        argv = ASGI_SERVERS[server].argv(storm.SIGNED_IN_APP, port)
        restarted_log = bench.logs / f"{deployment.name}-p0-restarted.log"
        restarted = Process(argv, restarted_log, {**env, "REDIS_URL": redis.url}, TARGETS["ours"].root)
        stack.callback(restarted.stop)
        restarted.wait_listening(port)
        listening_s = time.monotonic() - sigterm

        back = runner.wait_for("resubscribed", sigterm + plan.drain_window + RESUBSCRIBE_MARGIN_S - time.monotonic())
        time.sleep(plan.hold_s)
        pushed = pusher.stop()
        time.sleep(DELIVERY_GRACE_S)
        Path(config["stop_file"]).write_text(json.dumps(pushed))
        end = runner.wait_for("measure_stop", 60.0)
        result = runner.wait_for("result", 10.0)
        start = runner.seen["measure_start"]
        if end is None or result is None:
            raise loadgen.LoadgenFailed("the load generator gave no result")
        window = end.at - start.at
        return Outcome(
            result=result.data,
            pushed=pushed,
            resubscribed_s=None if back is None else back.at - sigterm,
            exited_s=exited_s,
            listening_s=listening_s,
            loadgen_cpu=procstat.cpu_percent(start.usage["loadgen"], end.usage["loadgen"], window),
            redis_cpu=procstat.cpu_percent(start.usage["redis"], end.usage["redis"], window),
            notes=notes,
        )


def _wait_exit(popen: subprocess.Popen, timeout: float, since: float, notes: list[str]) -> float | None:
    """Seconds from ``since`` until the drained server exited; killed (and noted) after ``timeout``."""
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        notes.append(f"the drained server had not exited {timeout:g} s after SIGTERM: killed")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(5)
        return None
    return time.monotonic() - since


def _stop_loadgen(runner: LoadRunner, stop_file: Path) -> None:
    """On the way out of a failed run: let the load generator end (it waits for its stop file)."""
    if not stop_file.exists():
        stop_file.write_text(json.dumps({"last_seq": -1, "stopped_at_ms": time.time() * 1000}))
    runner.join(15)


class Pusher:
    """``push()`` every PUSH_EVERY_S from a process of its own, numbering the pushes."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = open(log, "wb")  # closed in stop()
        self.pushed: dict[str, Any] | None = None
        self.process = subprocess.Popen(
            [sys.executable, "-c", PUSHER, DESTINATION, str(PUSH_EVERY_S)],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self.stop()
            raise loadgen.LoadgenFailed(f"the pusher did not start (log: {log})")

    def stop(self) -> dict[str, Any]:
        """Stop pushing: its last sequence number and when it stopped (wall clock, ms), failures."""
        if self.pushed is None:
            self.pushed = {"last_seq": -1, "stopped_at_ms": time.time() * 1000, "failed": 0, "errors": {}}
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                out, _ = self.process.communicate(timeout=15)
                self.pushed = json.loads(out.strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                self.process.kill()
                self.process.wait(5)
            self._log.close()
        return self.pushed


SCENARIO = Scenario("deploy_restart", "Deploy restart: one of two servers drained and restarted under load", run)
