"""The servers under test and their deployments: start them, wait until they listen, stop them.

A *target* is a server implementation; a *layer* is how it is deployed (channel layer, processes); an ASGI
target runs under an *ASGI server* (daphne unless a scenario chooses another). Every process is started in its own
session and stopped with its process group (``processes.py``), so nothing outlives the harness.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import procstat, rabbitmq
from .processes import PYTHONPATH as PYTHONPATH
from .processes import REPO as REPO
from .processes import Process, free_port
from .processes import ServerFailed as ServerFailed

STOMP_PATH = "/ws/stomp/"


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    #: ASGI application; None for the bare websockets server and RabbitMQ.
    asgi: str | None
    #: the checkout its code comes from (another commit's for the ``baseline`` target)
    root: Path = REPO
    #: "asgi" (an application under an ASGI server), "bare" (bench/bare_server.py), "rabbitmq" (a private node)
    kind: str = "asgi"
    #: among ``--smoke``'s default targets (RabbitMQ takes seconds to start: not in CI)
    smoke: bool = True

    @property
    def layered(self) -> bool:
        """Runs on a channel layer (the others are one process and broadcast in-process)."""
        return self.kind == "asgi"


@dataclass(frozen=True)
class Layer:
    key: str
    label: str
    redis: bool
    processes: int
    #: ``layer_config(layer=...)`` of our servers ("core" or "pubsub"; the textbook server always runs core).
    kind: str = "core"


@dataclass(frozen=True)
class AsgiServer:
    """How an ASGI application is served: ``python`` + ``args``, where ``{app}`` and ``{port}`` are filled in."""

    key: str
    label: str
    args: tuple[str, ...]

    def argv(self, app: str, port: int) -> list[str]:
        return [sys.executable, *(arg.format(app=app, port=port) for arg in self.args)]


TARGETS = {
    t.key: t
    for t in (
        Target("websockets", "bare websockets (ceiling)", None, kind="bare"),
        Target("rabbitmq", "RabbitMQ Web-STOMP", None, kind="rabbitmq", smoke=False),
        Target("textbook", "textbook Channels", "bench.textbook.asgi:application"),
        Target("ours", "django-stomp-push", "bench.ours_asgi:application"),
    )
}
#: daphne's listen backlog through its endpoint string (Twisted's default is 50; uvicorn's 2048, RabbitMQ's 1024)
DAPHNE_BACKLOG = 1024
DAPHNE_ENDPOINT = f"tcp:port={{port}}:interface=127.0.0.1:backlog={DAPHNE_BACKLOG}"
ASGI_SERVERS = {
    s.key: s
    for s in (
        # -v 0: no access log line per connection (the same for every daphne target).
        AsgiServer("daphne", "daphne", ("-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", "{port}", "{app}")),
        AsgiServer(
            "daphne-backlog",
            f"daphne, backlog {DAPHNE_BACKLOG}",
            ("-m", "daphne", "-v", "0", "-e", DAPHNE_ENDPOINT, "{app}"),
        ),
        # uvicorn's default WebSocket implementation (websockets) and backlog (2048); Channels has no lifespan
        AsgiServer(
            "uvicorn",
            "uvicorn",
            (
                "-m",
                "uvicorn",
                "{app}",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--log-level",
                "warning",
                "--no-access-log",
                "--lifespan",
                "off",
            ),
        ),
    )
}
LAYERS = {
    layer.key: layer
    for layer in (
        Layer("memory", "in-memory layer, 1 process", redis=False, processes=1),
        Layer("redis", "channels-redis, 1 process", redis=True, processes=1),
        Layer("redis-2p", "channels-redis, 2 processes", redis=True, processes=2),
        Layer("pubsub", "channels-redis pub/sub, 1 process", redis=True, processes=1, kind="pubsub"),
        Layer("pubsub-2p", "channels-redis pub/sub, 2 processes", redis=True, processes=2, kind="pubsub"),
    )
}
#: The bare server and RabbitMQ have no channel layer: they run in one process only.
TARGETS_OF_LAYER = {
    "memory": ("websockets", "rabbitmq", "textbook", "ours"),
    "redis": ("textbook", "ours"),
    "redis-2p": ("textbook", "ours"),
    "pubsub": ("ours",),
    "pubsub-2p": ("ours",),
}


def add_baseline(root: Path, rev: str) -> None:
    """Register target ``baseline``: django-stomp-push as checked out at ``root`` (commit ``rev``), deployed
    wherever ``ours`` is, so that a run compares a change with the code before it, interleaved."""
    TARGETS["baseline"] = Target("baseline", f"django-stomp-push at {rev}", "bench.ours_asgi:application", root)
    for layer, keys in TARGETS_OF_LAYER.items():
        if "ours" in keys:
            TARGETS_OF_LAYER[layer] = (*keys, "baseline")


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
    #: headers a client adds to CONNECT (RabbitMQ: the virtual host and the user)
    connect_headers: dict[str, str] = field(default_factory=dict)

    @property
    def pids(self) -> list[int]:
        """The server processes and their children (RabbitMQ's script runs the Erlang VM as its child)."""
        return [pid for p in self.processes for pid in procstat.with_children(p.pid)]


@contextlib.contextmanager
def deploy(
    target: Target,
    layer: Layer,
    logs: Path,
    name: str,
    redis: Redis | None,
    env: dict[str, str] | None = None,
    server: str = "daphne",
    app: str | None = None,
) -> Iterator[Deployment]:
    """Start ``layer.processes`` servers of ``target`` (``env`` added to their environment); stop them all on exit.

    ASGI targets run ``app`` (default: the target's application) under ``server`` (a key of :data:`ASGI_SERVERS`);
    the bare server and RabbitMQ ignore both, and the layer."""
    if target.kind == "rabbitmq":
        with _rabbitmq(logs, name) as deployment:
            yield deployment
        return
    env = {**(env or {}), **({"REDIS_URL": redis.url, "REDIS_LAYER": layer.kind} if layer.redis and redis else {})}
    if layer.redis and redis:
        redis.flush()
    processes: list[Process] = []
    urls = []
    try:
        for i in range(layer.processes):
            port = free_port()
            if target.kind == "bare":
                argv = [sys.executable, "-m", "bench.bare_server", "--port", str(port)]
            else:
                argv = ASGI_SERVERS[server].argv(app or target.asgi or "", port)
            process = Process(argv, logs / f"{name}-p{i}.log", env, target.root)
            processes.append(process)
            process.wait_listening(port)
            urls.append(f"ws://127.0.0.1:{port}{STOMP_PATH}")
        yield Deployment(name, urls, processes, redis if layer.redis else None)
    finally:
        for process in processes:
            process.stop()


@contextlib.contextmanager
def _rabbitmq(logs: Path, name: str) -> Iterator[Deployment]:
    node = rabbitmq.RabbitMQ(logs, name)
    try:
        assert node.process is not None
        yield Deployment(name, [node.url], [node.process], None, dict(rabbitmq.CONNECT_HEADERS))
    finally:
        node.stop()
