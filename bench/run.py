"""Run the benchmarks and print one table per figure, each against baselines measured in the same run.

    .venv/bin/python -m bench                      # every scenario, 3 repeats: an hour or more on 2 cores
    .venv/bin/python -m bench --smoke              # tiny sizes, 1 repeat, in-memory layer: a CI check
    .venv/bin/python -m bench --scenarios fanout --targets websockets,textbook --sizes 100,1000
    .venv/bin/python -m bench --write-docs         # also write docs/benchmarks.md

Exit status 1 when any run failed (a server did not start, nothing was delivered, ...).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

if not __package__:  # run as a file: python bench/run.py
    _repo = Path(__file__).resolve().parent.parent
    _venv_python = _repo / ".venv" / "bin" / "python"
    try:
        import daphne  # noqa: F401
    except ImportError:
        if _venv_python.exists() and Path(sys.executable) != _venv_python:
            os.execv(_venv_python, [str(_venv_python), __file__, *sys.argv[1:]])
    sys.path.insert(0, str(_repo))

from bench import rabbitmq
from bench.harness import Bench
from bench.report import Table
from bench.scenarios import SCENARIOS
from bench.servers import ASGI_SERVERS, LAYERS, REPO, TARGETS, add_baseline

#: targets left out of --smoke unless named (RabbitMQ takes seconds to start)
NOT_IN_SMOKE = [key for key, target in TARGETS.items() if not target.smoke]

DOCS = REPO / "docs" / "benchmarks.md"
RESULTS = REPO / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and 1 repeat: a quick check for CI")
    parser.add_argument("--scenarios", help=f"comma-separated, from: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument(
        "--targets",
        help=f"servers, from: {', '.join(TARGETS)} (default: all; --smoke: all but {', '.join(NOT_IN_SMOKE)})",
    )
    parser.add_argument(
        "--asgi-servers",
        help=f"what runs django-stomp-push in connect_storm and deploy_restart, from: {', '.join(ASGI_SERVERS)} "
        "(default: all)",
    )
    parser.add_argument("--layers", help=f"deployments, from: {', '.join(LAYERS)} (default: all; --smoke: memory)")
    parser.add_argument("--repeats", type=int, help="runs per figure, the median is shown (default 3; --smoke 1)")
    parser.add_argument(
        "--sizes",
        help="fan-out subscribers (default 100,1000,5000), storm clients (1000,3000,5000) and scale's hub "
        "processes (1,4,16,32; sizes up to 64), comma-separated",
    )
    parser.add_argument("--workers", type=int, default=2, help="load generator processes holding subscribers")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run, wait up to SECONDS for the machine to be below --quiet-cpu (other loads are noise)",
    )
    parser.add_argument("--quiet-cpu", type=float, default=30.0, help="%% of one core counted as quiet (default 30)")
    parser.add_argument("--write-docs", action="store_true", help=f"write the tables to {DOCS.relative_to(REPO)}")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run django-stomp-push as of git commit REV (target 'baseline'), interleaved with the current code",
    )
    args = parser.parse_args(argv)
    if args.baseline:
        add_baseline(checkout(args.baseline), args.baseline)

    def choose(value: str | None, known: dict[str, object], default: list[str]) -> list[str]:
        chosen = [v.strip() for v in value.split(",") if v.strip()] if value else default
        unknown = [c for c in chosen if c not in known]
        if unknown:
            parser.error(f"unknown {', '.join(unknown)}; choose from {', '.join(known)}")
        return chosen

    args.scenarios = choose(args.scenarios, SCENARIOS, [n for n, s in SCENARIOS.items() if s.smoke or not args.smoke])
    args.targets = choose(args.targets, TARGETS, [t for t in TARGETS if TARGETS[t].smoke or not args.smoke])
    args.asgi_servers = choose(args.asgi_servers, ASGI_SERVERS, list(ASGI_SERVERS))
    args.layers = choose(args.layers, LAYERS, ["memory"] if args.smoke else list(LAYERS))
    args.repeats = args.repeats or (1 if args.smoke else 3)
    args.sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    return args


def checkout(rev: str) -> Path:
    """A detached git worktree of ``rev`` under bench/results/ (removed with ``git worktree prune`` once deleted)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    root = RESULTS / f"baseline-{commit}"
    if not root.exists():
        RESULTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(root), commit], cwd=REPO, check=True)
    return root


def raise_open_files_limit() -> int:
    """Let this process and its children (servers, load generator) hold 10,000+ sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def environment() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    ws = json.loads((REPO / "node_modules" / "ws" / "package.json").read_text())["version"]
    packages = ", ".join(
        f"{p} {v(p)}"
        for p in ("django", "channels", "daphne", "channels-redis", "redis", "websockets", "twisted", "uvicorn")
    )
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores",
        f"- Python {platform.python_version()}: {packages}",
        f"- Node {node}, ws {ws}; redis-server from PATH; RabbitMQ {rabbitmq.version() or 'not installed'}",
    ]


def leave_out_unavailable(targets: list[str]) -> list[str]:
    """Remove the targets this machine cannot run (RabbitMQ not installed) from ``targets``: what was left out, why."""
    if "rabbitmq" in targets and (reason := rabbitmq.unavailable()):
        targets.remove("rabbitmq")
        return [f"RabbitMQ Web-STOMP skipped: {reason}"]
    return []


def check_tools(args: argparse.Namespace) -> list[str]:
    """Exit when a tool the run needs is missing; a missing RabbitMQ is left out instead (what was, and why)."""
    skipped = leave_out_unavailable(args.targets)
    missing = [tool for tool in ("node",) if shutil.which(tool) is None]
    on_redis_always = ("deploy_restart", "session_close")
    redis_needed = any(LAYERS[layer].redis for layer in args.layers) or any(
        scenario in args.scenarios for scenario in on_redis_always
    )
    if redis_needed and shutil.which("redis-server") is None:
        missing.append(f"redis-server (or choose --layers memory, without {' or '.join(on_redis_always)})")
    if not (REPO / "node_modules" / "ws").is_dir():
        missing.append("node_modules/ws (run npm ci)")
    try:
        import channels  # noqa: F401
        import daphne  # noqa: F401
    except ImportError:
        missing.append(f"daphne/channels for {sys.executable} (use .venv/bin/python)")
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}")
    return skipped


def render_section(name: str, tables: list[Table], run_line: str, failures: int) -> str:
    """One scenario's part of the page: its run, its tables, then their details, between markers."""
    out = [f"<!-- bench:{name} -->", f"## {SCENARIOS[name].title}", "", run_line, ""]
    if failures:
        out += [f"**{failures} run(s) failed in this run**: see the details tables.", ""]
    for table in tables:
        out += [table.render(), ""]
    out += ["#### Details", "", "Per server: median and range over repeats, side figures (medians), notes.", ""]
    for table in tables:
        out += [f"**{table.title}**", "", table.render_details(), ""]
    out.append(f"<!-- /bench:{name} -->")
    return "\n".join(out)


def render_page(sections: dict[str, str], environment_lines: list[str], workers: int) -> str:
    """The whole page: the method, then one section per scenario in registry order."""
    ordered = [sections[name] for name in SCENARIOS if name in sections]
    ordered += [text for name, text in sections.items() if name not in SCENARIOS]
    return "\n".join(
        [
            "# Benchmarks",
            "",
            PAGE_INTRO,
            "",
            METHOD.format(workers=workers),
            "",
            *environment_lines,
            "",
            *(section + "\n" for section in ordered),
        ]
    )


def read_sections(text: str) -> dict[str, str]:
    """The scenario sections of an existing page (so a run of some scenarios keeps the others' results)."""
    sections = {}
    for name in re.findall(r"<!-- bench:([\w-]+) -->", text):
        match = re.search(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", text, re.S)
        if match:
            sections[name] = match.group(0)
    return sections


PAGE_INTRO = """\
Generated by `python -m bench --write-docs` (see `bench/README.md`): each section below is the latest run of its
scenario, with the command and the date of that run; a run of some scenarios replaces their sections only.
Every figure is a median over repeats, shown with its ratio to the baselines measured in the same run. What the
figures mean, and what bounds them (with profiles), is on the [Performance](performance.md) page."""

METHOD = """\
How it is measured: every server is started fresh for every run, on 127.0.0.1; a Node load generator (`ws`,
{workers} processes holding the subscribers, one publisher connection) speaks STOMP 1.2 to `/ws/stomp/` with an
`Origin` header. Bodies are 64 bytes carrying a sequence number and a send timestamp (publish → receive latency on
one monotonic clock). Fan-out runs keep a bounded number of pushes in flight (closed loop); latency runs publish at
a fixed rate (open loop). CPU is % of one core from /proc (utime+stime), RSS from /proc/<pid>/statm; "other CPU"
is what the rest of the machine used during the window (noise). Repeats are interleaved across servers.
Baselines: *textbook Channels* is one `AsyncWebsocketConsumer` per connection, a channel-layer group per
destination and one `group_send` per push (bench/textbook/); *bare websockets* is an asyncio `websockets`
server broadcasting in-process (bench/bare_server.py), the ceiling; *RabbitMQ Web-STOMP* is a private RabbitMQ
node with the `rabbitmq_web_stomp` plugin (bench/rabbitmq.py: its own node name, ports and files), clients logging
in as guest to the default virtual host. daphne runs with `-v 0` (no access log)."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skipped = check_tools(args)
    open_files = raise_open_files_limit()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / stamp
    logs.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    run_line = (
        f"Run {datetime.datetime.now().isoformat(timespec='minutes')}: `{command.strip()}`, "
        f"{args.repeats} repeat(s), load average {os.getloadavg()[0]:.2f} at the start"
    ) + "".join(f"; {text}" for text in skipped)
    environment_lines = environment()
    bench = Bench(
        smoke=args.smoke,
        repeats=args.repeats,
        targets=args.targets,
        layers=args.layers,
        workers=args.workers,
        sizes=args.sizes,
        logs=logs,
        wait_quiet=args.wait_quiet,
        quiet_cpu=args.quiet_cpu,
        asgi_servers=args.asgi_servers,
    )
    bench.log(f"bench: open files limit {open_files}; logs in {logs.relative_to(REPO)}")
    for text in skipped:
        bench.log(f"bench: {text}")
    tables_of: dict[str, list[Table]] = {}
    failures_of: dict[str, int] = {}
    try:
        for name in args.scenarios:
            bench.log(f"== {name}: {SCENARIOS[name].title}")
            before, started = bench.failures, time.monotonic()
            tables_of[name] = SCENARIOS[name].run(bench)
            failures_of[name] = bench.failures - before
            bench.log(f"== {name}: done in {time.monotonic() - started:.0f} s")
    except KeyboardInterrupt:
        bench.log("interrupted: reporting what was measured")
    finally:
        bench.close()
    ended = f"load average {os.getloadavg()[0]:.2f} at the end"
    sections = {
        name: render_section(name, tables_of[name], f"{run_line}; {ended}.", failures_of.get(name, 0))
        for name in args.scenarios
        if name in tables_of
    }
    text = render_page(sections, environment_lines, args.workers)
    print(text)
    (logs / "results.json").write_text(
        json.dumps({name: [t.to_json() for t in tables] for name, tables in tables_of.items()}, indent=1)
    )
    (logs / "results.md").write_text(text)
    if args.write_docs:
        DOCS.parent.mkdir(exist_ok=True)
        kept = read_sections(DOCS.read_text()) if DOCS.exists() else {}
        DOCS.write_text(render_page({**kept, **sections}, environment_lines, args.workers))
        others = ", ".join(kept.keys() - sections.keys()) or "none"
        bench.log(f"wrote {DOCS.relative_to(REPO)}: sections {', '.join(sections)} (kept from before: {others})")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
