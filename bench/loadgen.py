"""Drive bench/loadgen.mjs: start it, read its events, and sample /proc at each event."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import procstat
from .servers import REPO

SCRIPT = Path(__file__).with_name("loadgen.mjs")
#: longer configs go through a file (Linux refuses a single argument over 128 KiB)
MAX_ARGUMENT = 64 * 1024


class LoadgenFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    at: float  # time.monotonic() when the harness read it
    usage: dict[str, procstat.Usage]  # process group name ("server", "redis", "loadgen") -> usage then


def run(
    config: dict[str, Any],
    watch: dict[str, list[int]],
    log: Path,
    timeout: float,
    on_event: Callable[[Event], None] | None = None,
) -> dict[str, Event]:
    """Run one load; return its events by name. ``watch`` names the process groups sampled at each event;
    ``on_event`` is called with each event as it arrives (e.g. to start a profiler at ``measure_start``)."""
    node = shutil.which("node")
    if node is None:
        raise LoadgenFailed("node is not on PATH")
    argument = json.dumps(config)
    if len(argument) > MAX_ARGUMENT:  # e.g. thousands of cookies: beyond what one argv string may hold
        config_file = log.with_suffix(".config.json")
        config_file.write_text(argument)
        argument = f"@{config_file}"
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [node, str(SCRIPT), argument],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    events: dict[str, Event] = {}
    buffer = b""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoadgenFailed(f"load generator still running after {timeout:g}s")
            readable, _, _ = select.select([proc.stdout], [], [], min(remaining, 1.0))
            if not readable:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                event = _event(json.loads(line), watch, proc.pid)
                events[event.name] = event
                if on_event is not None:
                    on_event(event)
                if event.name == "error":
                    raise LoadgenFailed(event.data.get("message", "error"))
                if event.name == "done":
                    return events
        raise LoadgenFailed(f"load generator exited ({proc.wait(5)}) before it was done (log: {log})")
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        proc.stdout.close()


def _event(data: dict[str, Any], watch: dict[str, list[int]], loadgen_pid: int) -> Event:
    usage = {name: procstat.total(pids) for name, pids in watch.items()}
    usage["loadgen"] = procstat.total(procstat.with_children(loadgen_pid))
    usage["machine"] = procstat.machine()
    return Event(data.pop("event"), data, time.monotonic(), usage)
