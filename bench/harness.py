"""What scenarios are given: one call to measure a target under a load, and the run's choices (repeats, smoke, ...)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import loadgen, procstat
from .servers import ASGI_SERVERS, LAYERS, TARGETS, TARGETS_OF_LAYER, Deployment, Redis, ServerFailed, deploy


@dataclass
class RunResult:
    """One load against one deployment. ``error`` set: nothing trustworthy was measured."""

    error: str | None = None
    mode: str = ""
    ready: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)
    server_cpu_pct: float | None = None
    loadgen_cpu_pct: float | None = None
    redis_cpu_pct: float | None = None
    #: CPU used by everything else on the machine during the window (other engineers' tests: noise)
    other_cpu_pct: float | None = None
    #: server RSS (all its processes): when listening, after the warm subscribers, at the end of the window
    rss_started: int | None = None
    rss_warm: int | None = None
    rss_end: int | None = None

    @property
    def publishes(self) -> bool:
        """The load published (fan-out, latency), as opposed to holding connections (idle) or opening them (storm)."""
        return self.mode in ("max", "rate")

    @property
    def delivered_pct(self) -> float | None:
        """Deliveries of the pushes sent in the window (drain included), as a share of pushes x live subscribers."""
        expected = self.measured.get("expected_deliveries")
        return 100.0 * self.measured["window_deliveries"] / expected if expected else None

    @property
    def extras(self) -> dict[str, float | None]:
        return {
            "connect+subscribe all": self.ready.get("ramp_s"),
            "delivered": self.delivered_pct,
            "server CPU": self.server_cpu_pct,
            "load generator CPU": self.loadgen_cpu_pct,
            "redis CPU": self.redis_cpu_pct,
            "other CPU": self.other_cpu_pct,
            "server RSS": self.rss_end,
        }

    def notes(self) -> list[str]:
        """What a reader should know about this run: failed connections, closes, losses, errors."""
        notes = []
        if self.ready.get("failed"):
            errors = ", ".join(f"{k} x{v}" for k, v in list(self.ready.get("errors", {}).items())[:3])
            notes.append(
                f"{self.ready['failed']} of {self.ready['failed'] + self.ready['connected']} connects failed ({errors})"
            )
        m = self.measured
        if self.publishes and m and not m["deliveries"]:
            notes.append(f"nothing delivered in the {m['elapsed_s']:.0f} s window")
        if m.get("closed"):
            notes.append(f"{m['closed']} connections closed during the window (codes {m.get('close_codes')})")
        if m.get("gaps"):
            notes.append(f"{m['gaps']} messages lost")
        if m.get("reordered"):
            notes.append(f"{m['reordered']} out of order")
        if m.get("silent") and m.get("pushes_sent"):
            notes.append(f"{m['silent']} subscribers received nothing in the window")
        if m.get("publisher_closed") is not None:
            notes.append(f"publisher closed ({m['publisher_closed']})")
        errors = {k: v for k, v in m.get("errors", {}).items() if k not in self.ready.get("errors", {})}
        if errors:
            notes.append("errors: " + ", ".join(f"{k} x{v}" for k, v in list(errors.items())[:3]))
        return notes


class Bench:
    """The run's choices, shared servers (Redis) and logs; ``measure()`` is the one way scenarios load a server."""

    def __init__(
        self,
        *,
        smoke: bool,
        repeats: int,
        targets: list[str],
        layers: list[str],
        workers: int,
        sizes: list[int] | None,
        logs: Path,
        wait_quiet: float = 0.0,
        quiet_cpu: float = 30.0,
        asgi_servers: list[str] | None = None,
    ) -> None:
        self.smoke = smoke
        self.repeats = repeats
        self.targets = targets
        self.layers = layers
        self.workers = workers
        self.sizes = sizes
        self.logs = logs
        self.wait_quiet = wait_quiet
        self.quiet_cpu = quiet_cpu
        #: the ASGI servers the storm scenarios run django-stomp-push under (the others use daphne)
        self.asgi_servers = asgi_servers or list(ASGI_SERVERS)
        self._redis: Redis | None = None
        self._runs = 0
        self.failures = 0
        #: (target, layer, load) that failed or delivered nothing once: not run again in later repeats
        self._hopeless: dict[str, str] = {}

    def combinations(self, layers: list[str] | None = None) -> list[tuple[str, str]]:
        """(layer, target) pairs chosen for this run, restricted to ``layers`` when given."""
        return [
            (layer, target)
            for layer in self.layers
            if layers is None or layer in layers
            for target in TARGETS_OF_LAYER[layer]
            if target in self.targets
        ]

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def measure(
        self,
        target: str,
        layer: str,
        load: dict[str, Any],
        timeout: float,
        *,
        server: str = "daphne",
        app: str | None = None,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        """Start ``target`` deployed as ``layer``, run ``load`` (a loadgen.mjs config without urls) against it.

        ``server``, ``app`` and ``env``: as for :meth:`server`."""
        result = RunResult(mode=str(load.get("mode", "")))
        key = json.dumps([target, layer, load, server, app, env], sort_keys=True)
        if key in self._hopeless:
            # e.g. the textbook server at 5,000 subscribers: minutes per attempt, and the same outcome every time
            result.error = f"not run again: {self._hopeless[key]} in an earlier repeat"
            self.log(f"  {target}/{layer}: {result.error}")
            return result
        self._wait_until_quiet()
        try:
            self._measure(target, layer, load, timeout, result, server, app, env)
        finally:
            if result.error and not result.error.startswith("not run again"):
                self._hopeless[key] = result.error[:120]
            elif result.publishes and result.measured and not result.measured.get("deliveries"):
                self._hopeless[key] = "nothing delivered"
        return result

    def _measure(
        self,
        target: str,
        layer: str,
        load: dict[str, Any],
        timeout: float,
        result: RunResult,
        server: str,
        app: str | None,
        env: dict[str, str] | None,
    ) -> None:
        try:
            with self.server(target, layer, env, server=server, app=app) as deployment:
                time.sleep(0.3)
                result.rss_started = procstat.total(deployment.pids).rss
                redis = deployment.redis
                watch = {"server": deployment.pids, "redis": [redis.process.pid] if redis else []}
                config = {
                    "workers": self.workers,
                    **load,
                    "urls": deployment.urls,
                    "connect_headers": {**deployment.connect_headers, **load.get("connect_headers", {})},
                }
                events = loadgen.run(config, watch, self.logs / f"{deployment.name}-loadgen.log", timeout)
        except (ServerFailed, loadgen.LoadgenFailed, OSError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            self.log(f"  {target}/{layer}: {result.error}")
            return
        result.ready = events["ready"].data if "ready" in events else {}
        if "warm" in events:
            result.rss_warm = events["warm"].usage["server"].rss
        start, end = events.get("measure_start"), events.get("measure_stop")
        if start is None or end is None or "result" not in events:
            result.error = "the load generator ended without a measurement"
            self.failures += 1
            return
        result.measured = events["result"].data
        seconds = end.at - start.at
        result.server_cpu_pct = procstat.cpu_percent(start.usage["server"], end.usage["server"], seconds)
        result.loadgen_cpu_pct = procstat.cpu_percent(start.usage["loadgen"], end.usage["loadgen"], seconds)
        if watch["redis"]:
            result.redis_cpu_pct = procstat.cpu_percent(start.usage["redis"], end.usage["redis"], seconds)
        machine = procstat.cpu_percent(start.usage["machine"], end.usage["machine"], seconds)
        result.other_cpu_pct = max(
            0.0, machine - result.server_cpu_pct - result.loadgen_cpu_pct - (result.redis_cpu_pct or 0.0)
        )
        result.rss_end = end.usage["server"].rss
        if not result.ready.get("connected"):
            result.error = f"no subscriber connected ({result.ready.get('errors')})"
            self.failures += 1

    def _wait_until_quiet(self) -> None:
        """Up to ``wait_quiet`` seconds for the rest of the machine to use less than ``quiet_cpu`` % CPU."""
        deadline = time.monotonic() + self.wait_quiet
        while time.monotonic() < deadline:
            before = procstat.machine()
            time.sleep(1.0)
            if procstat.cpu_percent(before, procstat.machine(), 1.0) < self.quiet_cpu:
                return

    @contextlib.contextmanager
    def server(
        self,
        target: str,
        layer: str,
        env: dict[str, str] | None = None,
        *,
        server: str = "daphne",
        app: str | None = None,
    ) -> Iterator[Deployment]:
        """``target`` deployed as ``layer`` (Redis flushed), for scenarios that drive it themselves.

        ``env``: extra environment for the server processes (e.g. ``DJANGO_DB_PATH``); ``server``: the ASGI server
        (a key of ``servers.ASGI_SERVERS``); ``app``: another ASGI application than the target's."""
        self._runs += 1
        redis = self._redis_server() if LAYERS[layer].redis else None
        name = f"{self._runs:03d}-{target}-{layer}" + (f"-{server}" if server != "daphne" else "")
        deployment_of = deploy(TARGETS[target], LAYERS[layer], self.logs, name, redis, env, server, app)
        with deployment_of as deployment:
            yield deployment

    def reject(self, result: RunResult, reason: str) -> None:
        """A scenario found the run unusable (e.g. nothing delivered)."""
        result.error = reason
        self.failures += 1

    def _redis_server(self) -> Redis:
        if self._redis is None:
            self._redis = Redis(self.logs)
        return self._redis

    def close(self) -> None:
        if self._redis is not None:
            self._redis.stop()
            self._redis = None
