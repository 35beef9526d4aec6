"""Pushes from synchronous code: CPU and wall time per ``push()`` call, against the old way in the same run.

A Python process set up as a Django project (:mod:`signed_in_settings`) calls, in a plain loop as a view or the
shell would, either ``django_stomp_push.push()`` or ``async_to_sync(apush)`` (what sync callers did before
``push()`` kept a loop of its own: a new event loop per call and, on channels-redis, a new Redis connection),
:data:`WARMUP` times and then N times (2,000; ``--smoke``: 200). Measured over the N calls: ``time.process_time()``
of that process (every thread of it: the loop ``push()`` hands the send to included) and its wall time.

On channels-redis a django-stomp-push server holds one connection subscribed to the destination, so each push
reaches a real group member; the share of the pushes it received is in the details ("delivered"). On the
in-memory layer the caller's layer has no subscriber: the figure is the call's own cost. With ``--baseline REV``,
``push()`` of that commit runs too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .. import procstat
from ..databases import SETTINGS, django_env
from ..harness import Bench
from ..processes import pythonpath
from ..report import Table, ms, pct
from ..servers import LAYERS, TARGETS, Redis
from . import Scenario
from .common import layer_label

FULL_PUSHES = 2_000
SMOKE_PUSHES = 200
WARMUP = 50
TARGET_CPU_MS = 0.2
DESTINATION = "/topic/push-bench"
#: the layers this scenario runs on, from the run's choices (two processes add nothing to a caller's cost)
LAYER_OF = {"memory": "memory", "redis": "redis", "redis-2p": "redis", "pubsub": "pubsub", "pubsub-2p": "pubsub"}

#: argv: way ("push" or "async_to_sync"), pushes, warm-up pushes, destination; prints the measured figures
PUSHER = """
import json, sys, time
import django
django.setup()
way, count, warmup, destination = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if way == "push":
    from django_stomp_push import push as send
else:
    from asgiref.sync import async_to_sync
    from django_stomp_push import apush
    send = async_to_sync(apush)
for i in range(warmup):
    send(destination, {"n": -1 - i})
cpu, wall = time.process_time(), time.perf_counter()
for i in range(count):
    send(destination, {"n": i})
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(json.dumps({"cpu_s": cpu, "wall_s": wall}))
"""


@dataclass(frozen=True)
class Way:
    """A column: how the pushes are sent, with whose code."""

    key: str
    label: str
    call: str  # "push" or "async_to_sync"
    target: str  # whose checkout: "ours" or "baseline"


def ways(bench: Bench) -> list[Way]:
    out = [Way("async_to_sync", "async_to_sync(apush), the old way", "async_to_sync", "ours")]
    if "baseline" in bench.targets:
        out.append(Way("baseline", f"push(), {TARGETS['baseline'].label}", "push", "baseline"))
    out.append(Way("ours", "push()", "push", "ours"))
    return out


class Subscriber:
    """One STOMP connection subscribed to :data:`DESTINATION`, counting the MESSAGE frames it receives."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        host = url.split("/")[2]
        self.ws = connect(url, origin=f"http://{host}", open_timeout=30)
        self.ws.send("CONNECT\naccept-version:1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n\x00")
        self.ws.recv(timeout=30)
        self.ws.send(f"SUBSCRIBE\nid:0\ndestination:{DESTINATION}\nreceipt:r\n\n\x00")
        if not str(self.ws.recv(timeout=30)).startswith("RECEIPT"):
            raise RuntimeError("the subscription was not confirmed")
        self.received = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for data in self.ws:
                text = data if isinstance(data, str) else data.decode()
                self.received += sum(1 for f in text.split("\x00") if f.lstrip("\r\n").startswith("MESSAGE"))
        except Exception:  # closed: the count stays
            return

    def wait_for(self, count: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.received < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received

    def close(self) -> None:
        self.ws.close()


@contextmanager
def _subscribed(bench: Bench, layer: str) -> Iterator[tuple[Subscriber | None, Redis | None]]:
    """On channels-redis: a server with a :class:`Subscriber`, and the Redis; in memory: neither."""
    if not LAYERS[layer].redis:
        yield None, None
        return
    with bench.server("ours", layer) as deployment:
        subscriber = Subscriber(deployment.urls[0])
        try:
            yield subscriber, deployment.redis
        finally:
            subscriber.close()


def _push(way: Way, pushes: int, redis: Redis | None, layer: str = "redis") -> dict[str, float]:
    root = TARGETS[way.target].root
    on_redis = {"REDIS_URL": redis.url, "REDIS_LAYER": LAYERS[layer].kind} if redis else {}
    env = django_env(SETTINGS, {"PYTHONPATH": pythonpath(root), **on_redis})
    argv = [sys.executable, "-c", PUSHER, way.call, str(pushes), str(WARMUP), DESTINATION]
    done = subprocess.run(
        argv, cwd=root, env=env, capture_output=True, text=True, timeout=60 + pushes * 0.05, check=False
    )
    if done.returncode:
        raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(bench: Bench) -> list[Table]:
    pushes = SMOKE_PUSHES if bench.smoke else FULL_PUSHES
    columns = ways(bench)
    layers = list(dict.fromkeys(LAYER_OF[layer] for layer in bench.layers))
    baselines = [w.key for w in columns if w.key != "ours"]
    note = (
        f"{pushes:,} calls in a plain loop after {WARMUP} warm-up calls, in a process of their own; CPU is "
        "time.process_time() of that process (all its threads). On channels-redis a django-stomp-push server "
        "holds a subscriber of the destination (the share of pushes it received: details); on the in-memory layer "
        f"nobody subscribes in the caller's process. Target: push() ≤ {TARGET_CPU_MS} ms CPU."
    )

    def table(title: str, metric: str) -> Table:
        return Table(
            title=f"push() from synchronous code: {title}",
            metric=metric,
            fmt=ms,
            row_header="channel layer",
            columns={w.key: w.label for w in columns},
            baselines=baselines,
            extras={"wall per push": ms, "CPU per push": ms, "redis CPU per push": ms, "delivered": pct},
            note=note,
        )

    cpu_table = table("CPU per call", "CPU ms per push of the calling process (lower is better)")
    wall_table = table("wall time per call", "wall ms per push (lower is better)")
    for repeat in range(bench.repeats):
        for layer in layers:
            row = layer_label(layer)
            try:
                with _subscribed(bench, layer) as (subscriber, redis):
                    shift = repeat % len(columns)
                    for way in columns[shift:] + columns[:shift]:
                        label = f"push_sync #{repeat + 1} {layer} {way.key}"
                        _measure(bench, way, pushes, subscriber, redis, (cpu_table, wall_table), row, label, layer)
            except Exception as exc:  # the server or its subscriber failed: the row's cells not measured fail
                bench.failures += 1
                bench.log(f"  push_sync #{repeat + 1} {layer}: failed: {type(exc).__name__}: {exc}")
                for way in columns:
                    for t in (cpu_table, wall_table):
                        if len(t.cell(row, way.key).values) <= repeat:
                            t.cell(row, way.key).fail(f"{type(exc).__name__}: {exc}")
    return [cpu_table, wall_table]


def _measure(
    bench: Bench,
    way: Way,
    pushes: int,
    subscriber: Subscriber | None,
    redis: Redis | None,
    tables: tuple[Table, Table],
    row: str,
    label: str,
    layer: str = "redis",
) -> None:
    cpu_table, wall_table = tables
    before = subscriber.received if subscriber else 0
    redis_before = procstat.usage(redis.process.pid).cpu_s if redis else 0.0
    try:
        figures = _push(way, pushes, redis, layer)
    except Exception as exc:
        bench.failures += 1
        reason = f"{type(exc).__name__}: {exc}"
        cpu_table.cell(row, way.key).fail(reason)
        wall_table.cell(row, way.key).fail(reason)
        bench.log(f"  {label}: failed: {reason}")
        return
    cpu_ms, wall_ms = figures["cpu_s"] * 1000 / pushes, figures["wall_s"] * 1000 / pushes
    extras: dict[str, float | None] = {"wall per push": wall_ms, "CPU per push": cpu_ms}
    notes = []
    if subscriber is not None:
        expected = pushes + WARMUP
        received = subscriber.wait_for(before + expected) - before
        extras["delivered"] = 100.0 * received / expected
        if redis is not None:
            extras["redis CPU per push"] = (procstat.usage(redis.process.pid).cpu_s - redis_before) * 1000 / expected
        if received < expected:
            notes.append(f"the subscriber received {received:,} of {expected:,} pushes")
    cpu_table.cell(row, way.key).add(cpu_ms, extras, notes)
    wall_table.cell(row, way.key).add(wall_ms, extras, notes)
    bench.log(f"  {label}: {cpu_ms:.3f} ms CPU, {wall_ms:.3f} ms wall per push" + "".join(f"; {n}" for n in notes))


SCENARIO = Scenario("push_sync", "push() from synchronous code: CPU per call", run)
