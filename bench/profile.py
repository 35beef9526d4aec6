"""Where a server spends its CPU under a benchmark load: py-spy samples, summed by component and by function.

    .venv/bin/python -m bench.profile                                 # ours, in-memory layer, fan-out to 1,000
    .venv/bin/python -m bench.profile --target textbook --layer redis --subscribers 100 --seconds 15
    .venv/bin/python -m bench.profile --load latency                  # 8 pushes/s to 1,000 subscribers
    .venv/bin/python -m bench.profile --load connect --server uvicorn # 2,000 signed-in connects, 100 in flight

The server is started as the benchmarks start it, the load is the fan-out (or latency) scenario's, and py-spy
samples the server process only during the measurement window (not the ramp). ``--load connect`` is
connect_storm's connects/s run instead: ``--subscribers`` clients (default 2,000), each with a signed-in session of
its own in a fresh SQLite file, ``--in-flight`` of them opening at a time, against the signed-in application under
``--server``; py-spy samples from the first connect for ``--seconds``. It prints the share of samples
per component (the package of the innermost frame: our code, autobahn's framing, Twisted, asyncio, ...) and the
functions with the most samples, and keeps the raw collapsed stacks (for a flame graph tool) in the log folder.
Needs py-spy (``pip install py-spy``) and the right to trace (root, or ptrace allowed).
"""

from __future__ import annotations

import argparse
import datetime
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from . import loadgen, storm
from .databases import COOKIE, SqliteSessions
from .harness import Bench
from .run import RESULTS, raise_open_files_limit
from .scenarios import fanout, latency
from .servers import ASGI_SERVERS, LAYERS, TARGETS

#: component of a frame, by the first matching part of its file path
COMPONENTS = [
    ("django_stomp_push/", "django-stomp-push"),
    ("bench/", "benchmark server code"),
    ("autobahn/", "autobahn (WebSocket framing)"),
    ("twisted/", "Twisted (reactor, TCP transport)"),
    ("daphne/", "daphne (ASGI server)"),
    ("channels_redis/", "channels-redis"),
    ("redis/", "redis-py"),
    ("channels/", "Channels"),
    ("asgiref/", "asgiref"),
    ("django/", "Django"),
    ("websockets/", "websockets"),
    ("asyncio/", "asyncio (event loop)"),
    ("selectors.py", "asyncio (event loop)"),
    ("threading.py", "threads"),
    ("concurrent/", "threads"),
]
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def component(path: str) -> str:
    return next((name for part, name in COMPONENTS if part in path), "other (Python's standard library, ...)")


def summarize(raw: str, top: int) -> str:
    """Collapsed stacks (``frame;frame;... count``) -> a table per component and the top functions (self time)."""
    by_component: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if FRAME.match(f)]
        if not frames:
            continue
        n = int(count)
        total += n
        leaf = FRAME.match(frames[-1])
        assert leaf is not None
        path = leaf["file"]
        by_component[component(path)] += n
        short = path.split("site-packages/")[-1].split("/work/main/")[-1]
        by_function[f"{leaf['function']} ({short})"] += n
    if not total:
        return "no samples (is the server busy? did py-spy have the right to trace?)"
    out = [f"{total} samples of the server's CPU (innermost frame)", "", "| component | share |", "| --- | --- |"]
    out += [f"| {name} | {100 * n / total:.1f}% |" for name, n in by_component.most_common()]
    out += ["", "| function (self time) | share |", "| --- | --- |"]
    out += [f"| `{name}` | {100 * n / total:.1f}% |" for name, n in by_function.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="ours", choices=[t for t in TARGETS if TARGETS[t].asgi])
    one_process = [layer for layer in LAYERS if LAYERS[layer].processes == 1]
    parser.add_argument("--layer", default="memory", choices=one_process)
    parser.add_argument("--load", default="fanout", choices=["fanout", "latency", "connect"])
    parser.add_argument("--subscribers", type=int, default=None, help="default 1,000 (connect: 2,000)")
    parser.add_argument("--server", default="daphne", choices=list(ASGI_SERVERS), help="ASGI server (connect)")
    parser.add_argument("--in-flight", type=int, default=100, help="handshakes in flight (connect)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the sampled window")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    raise_open_files_limit()
    logs = RESULTS / (datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + "-profile")
    logs.mkdir(parents=True, exist_ok=True)
    connect = args.load == "connect"
    subscribers = args.subscribers or (2_000 if connect else 1_000)
    sessions = SqliteSessions(logs) if connect else None
    server: dict[str, Any] = {}
    if sessions is not None:
        cookies = [f"{COOKIE}={key}" for key in sessions.create_sessions(subscribers + 1)]
        load = storm.load(subscribers, args.in_flight, cookies[1:], cookies[0])
        server = {"env": sessions.env(), "server": args.server, "app": storm.SIGNED_IN_APP}
    elif args.load == "fanout":
        load = dict(fanout.load(subscribers, smoke=False), subscribers=subscribers, measure_s=args.seconds + 1)
    else:
        load = dict(latency.load(smoke=False), subscribers=subscribers, measure_s=args.seconds + 1)
    bench = Bench(smoke=False, repeats=1, targets=[args.target], layers=[args.layer], workers=2, sizes=None, logs=logs)
    raw = logs / "profile.raw.txt"
    spies: list[subprocess.Popen] = []
    try:
        with bench.server(args.target, args.layer, **server) as deployment:
            pid = deployment.pids[0]

            def start_sampling(event: loadgen.Event) -> None:
                if event.name == "measure_start" and not spies:
                    argv = [spy, "record", "--pid", str(pid), "--duration", str(int(args.seconds))]
                    argv += ["--rate", str(args.rate), "--format", "raw", "--nonblocking", "--output", str(raw)]
                    spies.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

            config = {"workers": 2, **load, "urls": deployment.urls}
            timeout = storm.timeout(load) if connect else 300
            events = loadgen.run(config, {"server": deployment.pids}, logs / "loadgen.log", timeout, start_sampling)
            for spy_process in spies:
                _, err = spy_process.communicate(timeout=args.seconds + 30)
                if spy_process.returncode:
                    raise SystemExit(f"py-spy failed: {err.decode(errors='replace').strip()}")
    finally:
        bench.close()
        if sessions is not None:
            sessions.close()
    result = events.get("result")
    if connect:
        rate = result.data.get("connects_per_s") if result else None
        what = f"{args.target} under {args.server} / {args.layer}, {subscribers:,} signed-in connects"
        print(f"{what}, {args.in_flight} in flight: {rate or 0:,.0f} connects/s")
    else:
        rate = result.data.get("deliveries_per_s") if result else None
        what = f"{args.target} / {args.layer}, {args.load} to {subscribers:,} subscribers"
        print(f"{what}: {rate or 0:,.0f} deliveries/s")
    print(summarize(raw.read_text() if raw.exists() else "", args.top))
    print(f"\nraw collapsed stacks: {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
