"""Real processes for the tests: a private redis-server and daphne servers running the testproject.

Nothing here talks to services already on the machine: each Redis is started on a free port with no
persistence and stopped afterwards; each daphne runs ``testproject.asgi:application`` on a free port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTPROJECT = REPO / "testproject"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop(process: subprocess.Popen, timeout: float = 5.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (scripts/system-deps.sh installs it)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def keys(self) -> list[bytes]:
        import redis

        return redis.Redis(port=self.port).keys("*")

    def dump(self) -> bytes:
        """Every key and every value (raw bytes) currently in this Redis, for secrecy assertions."""
        import redis

        client = redis.Redis(port=self.port)
        out = []
        for key in client.keys("*"):
            out.append(key)
            kind = client.type(key)
            if kind == b"string":
                out.append(client.get(key) or b"")
            elif kind == b"zset":
                out.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
            elif kind == b"list":
                out.extend(client.lrange(key, 0, -1))
            elif kind == b"hash":
                for k, v in client.hgetall(key).items():
                    out.extend((k, v))
            elif kind == b"set":
                out.extend(client.smembers(key))
        return b"\n".join(out)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Project:
    """The testproject's environment shared by several server processes: one SQLite file, one Redis (and, with
    ``REDIS_LAYER="relay"``, the pub/sub layer behind one relay: see :meth:`start_relay`)."""

    db_path: Path
    redis_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    relay: Relay | None = None

    def start_relay(self) -> Relay:
        """Start this project's relay (``manage.py stomp_push_relay``) on the socket its servers use."""
        assert self.relay is None or self.relay.process is None
        socket_path = self.extra_env["STOMP_PUSH_RELAY"]
        self.relay = Relay(self, Path(socket_path)).start()
        return self.relay

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "testproject.settings",
            "DJANGO_DB_PATH": str(self.db_path),
            "PYTHONPATH": os.pathsep.join([str(TESTPROJECT), str(REPO)]),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
            **extra,
        }
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        else:
            env.pop("REDIS_URL", None)
        return env

    def manage(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(TESTPROJECT / "manage.py"), *args],
            env=self.env(**env),
            cwd=str(TESTPROJECT),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        """Run ``code`` in a fresh Python with Django set up for this project (e.g. a push from 'another process')."""
        prelude = "import django; django.setup()\n"
        return subprocess.run(
            [sys.executable, "-c", prelude + code],
            env=self.env(**env),
            cwd=str(TESTPROJECT),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


class ChildProcess:
    """What the tests do with a server's process (``process``) and its log (``log_path``)."""

    process: subprocess.Popen | None
    log_path: Path | None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


@dataclass
class Relay(ChildProcess):
    """A running ``manage.py stomp_push_relay`` of a Project."""

    project: Project
    socket_path: Path
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self) -> Relay:
        self.log_path = self.project.db_path.parent / "relay.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, str(TESTPROJECT / "manage.py"), "stomp_push_relay", "--socket", str(self.socket_path)],
            env=self.project.env(),
            cwd=str(TESTPROJECT),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while "relay: listening" not in self.log() or not self.socket_path.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the relay did not start:\n{self.log()}")
            time.sleep(0.05)
        return self


class LocalUrls:
    """The URLs of a server listening on 127.0.0.1:``port`` with the endpoint at ``/ws/stomp/``: what the clients of
    the tests (StompJsClient, HttpSession's callers) need of a server."""

    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/stomp/"


@dataclass
class DaphneServer(LocalUrls, ChildProcess):
    project: Project
    port: int
    env: dict[str, str]
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    #: "daphne" or "uvicorn": the ASGI server that runs testproject.asgi:application
    server: str = "daphne"

    def start(self) -> DaphneServer:
        self.log_path = self.project.db_path.parent / f"{self.server}-{self.port}.log"
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, *self.command(), "testproject.asgi:application"],
            env=self.project.env(**self.env),
            cwd=str(TESTPROJECT),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, timeout=30, process=self.process)
            if self.server == "gunicorn":  # its master listens before the workers can answer
                self.wait_for_log("Application startup complete.", int(self.env.get("GUNICORN_WORKERS", "2")))
        except Exception:
            raise RuntimeError(f"{self.server} did not start:\n{self.log()}") from None
        return self

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if time.monotonic() > deadline or (self.process is not None and self.process.poll() is not None):
                raise TimeoutError(f"{text!r} not logged {count} time(s)")
            time.sleep(0.05)

    def command(self) -> list[str]:
        """The Python arguments that start the server (before the application's path)."""
        if self.server == "uvicorn":
            return ["-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port), "--ws", "websockets"]
        if self.server == "gunicorn":  # a master and GUNICORN_WORKERS uvicorn workers (2 by default)
            workers = self.env.get("GUNICORN_WORKERS", "2")
            worker = "uvicorn.workers.UvicornWorker"
            backlog = ["--backlog", self.env["GUNICORN_BACKLOG"]] if "GUNICORN_BACKLOG" in self.env else []
            options = ["-k", worker, "-w", workers, "-b", f"127.0.0.1:{self.port}", "--no-control-socket", *backlog]
            return ["-m", "gunicorn", *options]
        if self.server == "daphne-backlog":  # a listen backlog through daphne's endpoint string
            backlog = self.env.get("DAPHNE_BACKLOG", "1024")
            return ["-m", "daphne", "-e", f"tcp:port={self.port}:interface=127.0.0.1:backlog={backlog}"]
        return ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]

    def login(self, username: str, password: str) -> HttpSession:
        return HttpSession(self.http_url).login(username, password)


class HttpSession:
    """A browser-like HTTP client (cookies, CSRF) for one server."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    @property
    def session_key(self) -> str | None:
        return self.cookie("sessionid")

    def get(self, path: str) -> str:
        with self.opener.open(self.base_url + path, timeout=10) as response:
            return response.read().decode()

    def post(self, path: str, data: dict[str, str] | None = None) -> int:
        self.get("/accounts/login/") if self.cookie("csrftoken") is None else None
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": self.cookie("csrftoken") or "", **(data or {})})
        request = urllib.request.Request(
            self.base_url + path,
            data=body.encode(),
            headers={"Referer": self.base_url + "/", "X-CSRFToken": self.cookie("csrftoken") or ""},
        )
        with self.opener.open(request, timeout=10) as response:
            return response.status

    def login(self, username: str, password: str) -> HttpSession:
        self.get("/accounts/login/")
        self.post("/accounts/login/", {"username": username, "password": password})
        if self.session_key is None:
            raise AssertionError(f"login of {username!r} failed")
        return self

    def logout(self) -> int:
        return self.post("/accounts/logout/")


def migrated_project(tmp_path_factory, redis_url: str | None = None, **extra_env: str) -> Project:
    """A migrated testproject environment (its own SQLite file) with the demo users alice and bob.

    ``REDIS_LAYER="relay"``: the pub/sub layer, every server behind one relay (started here, stopped by
    :func:`project_factory`)."""
    directory = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    relayed = extra_env.get("REDIS_LAYER") == "relay"
    if relayed:
        # A unix socket's path must be short (108 bytes): not under pytest's temporary directory.
        extra_env.update(REDIS_LAYER="pubsub", STOMP_PUSH_RELAY=tempfile.mkdtemp(prefix="sp-") + "/relay.sock")
    project = Project(directory / "db.sqlite3", redis_url, dict(extra_env))
    for args in (("migrate", "--noinput", "-v0"), ("demo_users",)):
        result = project.manage(*args)
        assert result.returncode == 0, result.stderr
    if relayed:
        project.start_relay()
    return project


@pytest.fixture
def project_factory(tmp_path_factory) -> Iterator:
    """Make :func:`migrated_project` environments for one test."""

    made: list[Project] = []

    def make(redis_url: str | None = None, **extra_env: str) -> Project:
        made.append(migrated_project(tmp_path_factory, redis_url, **extra_env))
        return made[-1]

    yield make
    for project in made:
        if project.relay is not None:
            project.relay.stop()


@pytest.fixture
def daphne_factory() -> Iterator:
    """Start servers of a Project (daphne, or ``server="uvicorn"``); all are stopped after the test."""
    started: list[DaphneServer] = []

    def start(project: Project, server: str = "daphne", **env: str) -> DaphneServer:
        server = DaphneServer(project, free_port(), env, server=server).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


DEMO_PASSWORDS = {"alice": "alice-demo-pw", "bob": "bob-demo-pw"}
