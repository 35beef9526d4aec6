"""The processes of one ``scale`` run: a private Redis, K hub stand-ins (:mod:`bench.scale_hub`) and one pusher
(:mod:`bench.scale_push`), all on one channel layer; phases of pushes, and what every stand-in received of them.

The stand-ins and the pusher speak JSON lines over pipes (:class:`Child`); everything runs in its own session and
is stopped with its process group, so nothing outlives a run.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procstat
from .databases import django_env
from .processes import REPO
from .servers import Redis

SETTINGS = "bench.settings_scale"
#: seconds for K stand-ins started at once to be set up and in the group (32 Django processes on 2 cores: ~15 s)
READY_TIMEOUT = 150.0
#: layer "relay": server processes per relay, as on an 8-core machine (K = 32 stand-ins: 4 relays, 4 "machines")
PROCESSES_PER_RELAY = 8
#: seconds between two looks at the stand-ins still receiving a phase's pushes
POLL_S = 1.0
#: seconds a phase's deliveries may take after its last push at most, however steadily they go on
MAX_DRAIN_S = 600.0


class ChildFailed(RuntimeError):
    pass


class Child:
    """A Python module run as a child: JSON commands on its stdin, JSON events on its stdout, stderr to ``log``."""

    def __init__(self, name: str, module: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._log = open(log, "wb")  # closed by stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._backlog: list[dict[str, Any]] = []
        self._exited = False
        threading.Thread(target=self._read, name=f"scale {name}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self._events.put(event)
        self._events.put(None)

    def send(self, command: dict[str, Any]) -> None:
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(json.dumps(command) + "\n")
            self.popen.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._failed() from None

    def expect(self, match: Callable[[dict[str, Any]], bool], deadline: float) -> dict[str, Any] | None:
        """The first event (earlier ones not taken yet included) that ``match``es, or None at ``deadline``."""
        for i, event in enumerate(self._backlog):
            if match(event):
                return self._backlog.pop(i)
        while not self._exited:
            try:
                event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if event is None:
                self._exited = True
                break
            if match(event):
                return event
            self._backlog.append(event)
        raise self._failed()

    def _failed(self) -> ChildFailed:
        try:
            code = self.popen.wait(2)
        except subprocess.TimeoutExpired:
            code = None
        self._log.flush()
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        where = self.log.relative_to(REPO) if self.log.is_relative_to(REPO) else self.log
        return ChildFailed(f"{self.name} exited with {code}: {last} (log: {where})")

    def end_input(self) -> None:
        """End of input: the child stops by itself."""
        with contextlib.suppress(OSError):
            assert self.popen.stdin is not None
            self.popen.stdin.close()

    def stop(self, grace: float = 3.0) -> None:
        self.end_input()
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, sig)
                try:
                    self.popen.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log.close()


@dataclass
class Snapshot:
    """CPU seconds so far of Redis (its INFO), the stand-ins, the pusher, the relays and the whole machine."""

    at: float
    redis_s: float
    hubs_s: float
    pusher_s: float
    machine_s: float
    relays_s: float = 0.0


@dataclass
class PhaseResult:
    """One phase: the pusher's answer, each stand-in's summary, and the usage around it."""

    pushed: dict[str, Any]
    hubs: list[dict[str, Any]]
    before: Snapshot
    after: Snapshot
    #: stand-ins that had not received every push when the wait ended
    late: list[str] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return sum(int(h["expected"]) for h in self.hubs)

    @property
    def received(self) -> int:
        return sum(int(h["received"]) for h in self.hubs)

    @property
    def last_delivery(self) -> float:
        return max(float(h["last_at"]) for h in self.hubs)

    def latencies_ms(self) -> list[float]:
        return sorted(x for h in self.hubs for x in h["latencies_ms"])

    def problems(self) -> list[str]:
        """Losses, duplicates, failed pushes, channel-layer errors: each makes the phase a failure."""
        out = []
        if self.pushed["errors"]:
            out.append(f"{self.pushed['errors']} pushes failed ({self.pushed['error']})")
        if self.received < self.expected:
            out.append(
                f"lost {self.expected - self.received:,} of {self.expected:,} deliveries "
                f"({len(self.late)} of {len(self.hubs)} hubs short)"
            )
        if duplicates := sum(int(h["duplicates"]) for h in self.hubs):
            out.append(f"{duplicates} duplicate deliveries")
        if errors := max(int(h["layer_errors"]) for h in self.hubs):
            out.append(f"channel-layer receive errors in a hub ({errors})")
        return out


class Fleet:
    """A running set: Redis, the hub stand-ins and the pusher, all on one channel layer."""

    def __init__(
        self, redis: Redis, hubs: list[Child], pusher: Child, ready_s: float, relays: list[int] | None = None
    ) -> None:
        self.redis = redis
        self.hubs = hubs
        self.pusher = pusher
        #: the pids of the relays (layer "relay")
        self.relays = relays or []
        #: seconds from starting the processes to every stand-in in the group
        self.ready_s = ready_s
        self._phases = itertools.count(1)
        import redis as redis_py

        self._client = redis_py.Redis(host="127.0.0.1", port=redis.port, socket_timeout=10)

    def snapshot(self) -> Snapshot:
        cpu = self._client.info("cpu")
        return Snapshot(
            at=time.monotonic(),
            redis_s=float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            hubs_s=procstat.total([h.pid for h in self.hubs]).cpu_s,
            pusher_s=procstat.usage(self.pusher.pid).cpu_s,
            machine_s=procstat.machine().cpu_s,
            relays_s=procstat.total(self.relays).cpu_s if self.relays else 0.0,
        )

    def hub_rss(self) -> int:
        """Resident memory of one stand-in, on average."""
        return procstat.total([h.pid for h in self.hubs]).rss // max(1, len(self.hubs))

    def phase(self, command: dict[str, Any], push_timeout: float, stall_s: float) -> PhaseResult:
        """Send one pusher command (a fresh phase number is added) and wait until every stand-in received every
        push: as long as deliveries go on, up to :data:`MAX_DRAIN_S`; the pushes still missing when none arrived
        for ``stall_s`` seconds are lost."""
        number = next(self._phases)
        before = self.snapshot()
        self.pusher.send({**command, "phase": number})
        pushed = self.pusher.expect(_of_phase("pushed", number), time.monotonic() + push_timeout)
        if pushed is None:
            raise ChildFailed(f"the pusher did not finish {command['count']:,} pushes in {push_timeout:g} s")
        done = self._wait_done(number, stall_s)
        after = self.snapshot()
        late = [name for name, event in done.items() if event is None]
        summaries = []
        for hub in self.hubs:
            event = done[hub.name]
            if event is None:
                hub.send({"cmd": "report", "phase": number})
                event = hub.expect(_of_phase("report", number), time.monotonic() + 10)
                if event is None:
                    raise ChildFailed(f"{hub.name} did not report on phase {number}")
                event = {**event, "expected": command["count"]}  # a hub that received nothing knows no total
            summaries.append(event)
        return PhaseResult(pushed, summaries, before, after, late)

    def _wait_done(self, number: int, stall_s: float) -> dict[str, dict[str, Any] | None]:
        """Each stand-in's ``done`` event of phase ``number``, None for those still short when the deliveries
        stalled for ``stall_s`` seconds (or after :data:`MAX_DRAIN_S`)."""
        done: dict[str, dict[str, Any] | None] = {hub.name: None for hub in self.hubs}
        progress, progressed_at = -1, time.monotonic()
        give_up = progressed_at + MAX_DRAIN_S
        while True:
            pending = [hub for hub in self.hubs if done[hub.name] is None]
            if pending:  # block on one for a while, then take what the others sent meanwhile
                done[pending[0].name] = pending[0].expect(_of_phase("done", number), time.monotonic() + POLL_S)
                for hub in pending[1:]:
                    done[hub.name] = hub.expect(_of_phase("done", number), time.monotonic())
            pending = [hub for hub in self.hubs if done[hub.name] is None]
            if not pending:
                return done
            finished = sum(int(event["received"]) for event in done.values() if event is not None)
            received = finished + self._progress(pending, number)
            now = time.monotonic()
            if received > progress:
                progress, progressed_at = received, now
            elif now - progressed_at > stall_s or now > give_up:
                return done

    def _progress(self, hubs: list[Child], number: int) -> int:
        """Pushes of phase ``number`` received so far by ``hubs``, together."""
        for hub in hubs:
            hub.send({"cmd": "report", "phase": number, "brief": True})
        total = 0
        for hub in hubs:
            event = hub.expect(_of_phase("progress", number), time.monotonic() + 10)
            if event is None:
                raise ChildFailed(f"{hub.name} did not answer within 10 s")
            total += int(event["received"])
        return total

    def close(self) -> None:
        self._client.close()


def _of_phase(kind: str, number: int) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event.get("event") == kind and event.get("phase") == number


@contextlib.contextmanager
def fleet(layer: str, hubs: int, logs: Path, light: bool = False) -> Iterator[Fleet]:
    """Redis, ``hubs`` stand-ins and the pusher on ``layer``, started at once; yielded when every stand-in has
    joined the benchmark destination's group and the pusher is set up. Logs go to ``logs`` (created).

    ``light``: instead of K hub processes, one process with K subscribers that only read (:mod:`bench.scale_light`,
    pub/sub layer, directly or behind relays)."""
    logs.mkdir(parents=True, exist_ok=True)
    redis = Redis(logs)
    children: list[Child] = []
    relays: list[subprocess.Popen[bytes]] = []
    try:
        env = django_env(SETTINGS, {"REDIS_URL": redis.url, "BENCH_SCALE_LAYER": layer})
        sockets: list[str] = []
        if layer == "relay":
            sockets = [
                tempfile.mkdtemp(prefix="sp-bench-") + "/relay.sock" for _ in range(-(-hubs // PROCESSES_PER_RELAY))
            ]
            env["BENCH_RELAY_SOCKET"] = sockets[0]  # (each relay is given its own socket)
            for i, path in enumerate(sockets):  # appended one by one: those started are stopped if one fails
                relays.append(start_relay(env, path, logs / f"relay-{i + 1}.log"))
        if light:
            light_env = {**env, "BENCH_LIGHT_SUBSCRIBERS": str(hubs), "BENCH_LIGHT_RELAYS": ",".join(sockets)}
            children.append(Child(f"{hubs} readers", "bench.scale_light", light_env, logs / "readers.log"))
        else:
            children += [
                Child(f"hub {i + 1}", "bench.scale_hub", hub_env(env, sockets, i), logs / f"hub-{i + 1}.log")
                for i in range(hubs)
            ]
        children.append(Child("pusher", "bench.scale_push", env, logs / "pusher.log"))
        started = time.monotonic()
        deadline = started + READY_TIMEOUT
        for child in children:
            if child.expect(lambda event: event.get("event") == "ready", deadline) is None:
                raise ChildFailed(f"{child.name} not ready after {READY_TIMEOUT:g} s (log: {child.log})")
        running = Fleet(redis, children[:-1], children[-1], time.monotonic() - started, [r.pid for r in relays])
        try:
            yield running
        finally:
            running.close()
    finally:
        for child in children:
            child.end_input()  # all at once: they stop in parallel
        for child in children:
            child.stop()
        for relay in relays:
            relay.terminate()
            try:
                relay.wait(5)
            except subprocess.TimeoutExpired:
                relay.kill()
        redis.stop()


def hub_env(env: dict[str, str], sockets: list[str], index: int) -> dict[str, str]:
    """Stand-in ``index``'s environment: behind relay ``index // PROCESSES_PER_RELAY`` when there are relays."""
    if not sockets:
        return env
    return {**env, "BENCH_RELAY_SOCKET": sockets[index // PROCESSES_PER_RELAY]}


def start_relay(env: dict[str, str], path: str, log: Path) -> subprocess.Popen[bytes]:
    """``manage.py stomp_push_relay`` on ``path``, once it listens."""
    with open(log, "wb") as out:
        relay = subprocess.Popen(
            [sys.executable, "-m", "django", "stomp_push_relay", "--socket", path],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if relay.poll() is not None or time.monotonic() > deadline:
            relay.kill()
            raise ChildFailed(f"the relay on {path} did not start (log: {log})")
        time.sleep(0.05)
    return relay
