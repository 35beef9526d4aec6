"""The servers under test and their deployments: start them, wait until they listen, stop them.

A *target* is a server implementation; a *layer* is how it is deployed (channel layer, processes). Every
process is started in its own session and stopped with its process group, so nothing outlives the harness.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STOMP_PATH = "/ws/stomp/"


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    #: daphne application; None for the bare websockets server.
    asgi: str | None
    #: the checkout its code comes from (another commit's for the ``baseline`` target)
    root: Path = REPO


@dataclass(frozen=True)
class Layer:
    key: str
    label: str
    redis: bool
    processes: int


TARGETS = {
    t.key: t
    for t in (
        Target("websockets", "bare websockets (ceiling)", None),
        Target("textbook", "textbook Channels", "bench.textbook.asgi:application"),
        Target("ours", "django-stomp-push", "bench.ours_asgi:application"),
    )
}
LAYERS = {
    layer.key: layer
    for layer in (
        Layer("memory", "in-memory layer, 1 process", redis=False, processes=1),
        Layer("redis", "channels-redis, 1 process", redis=True, processes=1),
        Layer("redis-2p", "channels-redis, 2 processes", redis=True, processes=2),
    )
}
#: The bare server has no channel layer: it runs in one process only.
TARGETS_OF_LAYER = {
    "memory": ("websockets", "textbook", "ours"),
    "redis": ("textbook", "ours"),
    "redis-2p": ("textbook", "ours"),
}


def add_baseline(root: Path, rev: str) -> None:
    """Register target ``baseline``: django-stomp-push as checked out at ``root`` (commit ``rev``), deployed
    wherever ``ours`` is, so that a run compares a change with the code before it, interleaved."""
    TARGETS["baseline"] = Target("baseline", f"django-stomp-push at {rev}", "bench.ours_asgi:application", root)
    for layer, keys in TARGETS_OF_LAYER.items():
        if "ours" in keys:
            TARGETS_OF_LAYER[layer] = (*keys, "baseline")


def pythonpath(root: Path) -> str:
    """The checkout (bench, django_stomp_push) and its test project's directory (testproject, demo)."""
    return os.pathsep.join([str(root), str(root / "testproject")])


#: this checkout's
PYTHONPATH = pythonpath(REPO)


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _last_line(path: Path) -> str:
    """The log's last line (usually the exception), and where the rest is."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return f"{lines[-1].strip() if lines else 'no output'} (log: {where})"


class Process:
    """A child process in its own session, logging to a file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None, root: Path = REPO) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                argv,
                cwd=root,
                env={**os.environ, "PYTHONPATH": pythonpath(root), "PYTHONUNBUFFERED": "1", **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_listening(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ServerFailed(f"exited with {self.popen.returncode}: {_last_line(self.log)}")
            if _listening(port):
                return
            time.sleep(0.1)
        raise ServerFailed(f"not listening on {port} after {timeout:g}s: {_last_line(self.log)}")

    def stop(self, grace: float = 3.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


class Redis:
    """A private, non-persistent redis-server on a free port."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.process = Process(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "20000",
            ],
            logs / "redis.log",
        )
        self.process.wait_listening(self.port, timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        self.process.stop()


@dataclass
class Deployment:
    name: str
    urls: list[str]
    processes: list[Process]
    redis: Redis | None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


@contextlib.contextmanager
def deploy(
    target: Target, layer: Layer, logs: Path, name: str, redis: Redis | None, env: dict[str, str] | None = None
) -> Iterator[Deployment]:
    """Start ``layer.processes`` servers of ``target`` (``env`` added to their environment); stop them all on exit."""
    env = {**(env or {}), **({"REDIS_URL": redis.url} if layer.redis and redis else {})}
    if layer.redis and redis:
        redis.flush()
    processes: list[Process] = []
    urls = []
    try:
        for i in range(layer.processes):
            port = free_port()
            if target.asgi is None:
                argv = [sys.executable, "-m", "bench.bare_server", "--port", str(port)]
            else:
                # -v 0: no access log line per connection (the same for every daphne target).
                argv = [sys.executable, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(port), target.asgi]
            process = Process(argv, logs / f"{name}-p{i}.log", env, target.root)
            processes.append(process)
            process.wait_listening(port)
            urls.append(f"ws://127.0.0.1:{port}{STOMP_PATH}")
        yield Deployment(name, urls, processes, redis if layer.redis else None)
    finally:
        for process in processes:
            process.stop()
