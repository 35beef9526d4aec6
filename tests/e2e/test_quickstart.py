"""docs/quickstart.md, followed as written: a fresh ``startproject``, the page's files and commands, then a real
sign-in, a real @stomp/stompjs client in Node, pushes from a view and from ``manage.py shell``, and a logout.

Every code block of the page that a reader must apply is marked with an HTML comment just before its fence:

- ``<!-- quickstart: run -->``: shell commands, run one line at a time from the directory the page is in;
- ``<!-- quickstart: write PATH -->``: the block is the whole file ``PATH``;
- ``<!-- quickstart: append PATH -->``: the block goes at the end of ``PATH``.

What the test does not run as written, each on purpose: ``pip install`` (the package is installed, editable, in
the virtualenv running the tests), ``npm install`` (the repository's ``node_modules`` stands in for it),
``createsuperuser`` (run with ``--noinput``), ``runserver`` (started on a free port once every file is written) and
the Redis URL (the test's own redis-server). The stomp.py example of docs/clients.md runs against the same
project.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.interop.stompjs import StompJsClient, node_binary
from tests.servers import REPO, HttpSession, LocalUrls, RedisServer, free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.interop]

QUICKSTART = REPO / "docs" / "quickstart.md"
CLIENTS = REPO / "docs" / "clients.md"
BIN = Path(sys.executable).parent  # the virtualenv's bin: python, django-admin
PAGE_REDIS_URL = "redis://127.0.0.1:6379/0"
USERNAME, PASSWORD = "ada", "quickstart-pw-1"
DELETE_EVERY_SESSION = "from django.contrib.sessions.models import Session; Session.objects.all().delete()"

MARKED_BLOCK = re.compile(
    r"<!-- quickstart: (?P<action>[\w-]+)(?: (?P<path>\S+))? -->\s*\n```[\w-]*\n(?P<code>.*?)```", re.S
)


@dataclass
class Block:
    action: str
    path: str | None
    code: str


def marked_blocks(page: Path) -> list[Block]:
    return [Block(m["action"], m["path"], m["code"]) for m in MARKED_BLOCK.finditer(page.read_text())]


@dataclass
class Site(LocalUrls):
    """The quickstart project being served (what StompJsClient needs of a server)."""

    port: int


@dataclass
class Walkthrough:
    """The page applied to ``root``; what it asks to run later is kept for later."""

    root: Path
    redis_url: str
    cwd: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    installs: list[str] = field(default_factory=list)
    server_command: str | None = None
    shell_pushes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cwd = self.root
        env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
        env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        self.env = env

    def apply(self, block: Block) -> None:
        if block.action == "run":
            for line in block.code.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    self.run_line(line.strip())
        elif block.action in ("write", "append"):
            target = self.cwd / block.path
            target.parent.mkdir(parents=True, exist_ok=True)
            code = block.code
            if PAGE_REDIS_URL in code:
                code = code.replace(PAGE_REDIS_URL, self.redis_url)
            if block.action == "write":
                target.write_text(code)
            else:
                assert target.exists(), f"the page appends to {block.path}, which does not exist at that point"
                target.write_text(target.read_text() + "\n\n" + code)
        else:
            raise AssertionError(f"unknown quickstart marker {block.action!r}")

    def run_line(self, line: str) -> None:
        words = shlex.split(line)
        if words[:2] == ["pip", "install"]:
            self.installs.append(line)
        elif words[:2] == ["npm", "install"]:
            (self.cwd / "node_modules").symlink_to(REPO / "node_modules", target_is_directory=True)
        elif words[0] == "cd":
            self.cwd = self.cwd / words[1]
        elif words[:3] == ["python", "manage.py", "runserver"]:
            self.server_command = line
        elif words[:3] == ["python", "manage.py", "shell"]:
            self.shell_pushes.append(line)
        elif words[:3] == ["python", "manage.py", "createsuperuser"]:
            self.sh(
                line + " --noinput",
                DJANGO_SUPERUSER_USERNAME=USERNAME,
                DJANGO_SUPERUSER_PASSWORD=PASSWORD,
                DJANGO_SUPERUSER_EMAIL="ada@example.com",
            )
        else:
            self.sh(line)

    def sh(self, line: str, **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["bash", "-c", line], cwd=self.cwd, env={**self.env, **env}, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"`{line}` failed in {self.cwd}:\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    node_binary()  # skips, saying why, without Node or the npm packages
    redis = RedisServer(free_port()).start()  # skips, saying why, without redis-server
    try:
        done = Walkthrough(tmp_path_factory.mktemp("quickstart"), redis.url)
        for block in marked_blocks(QUICKSTART):
            done.apply(block)
        yield done
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def served(walkthrough):
    """The quickstart project under ``runserver`` (daphne's), as the page starts it, on a free port."""
    assert walkthrough.server_command == "python manage.py runserver", walkthrough.server_command
    port = free_port()
    log = walkthrough.root / "runserver.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*shlex.split(walkthrough.server_command), f"127.0.0.1:{port}"],
            cwd=walkthrough.cwd,
            env=walkthrough.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # runserver's autoreloader runs the server in a child: stop the whole group
        )
    try:
        try:
            wait_for_port(port, timeout=60, process=process)
        except Exception:
            raise AssertionError(f"runserver did not start:\n{log.read_text()}") from None
        yield Site(port), log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def expect_message(client: StompJsClient, destination: str, timeout: float = 10.0) -> dict:
    event = client.expect("message", timeout=timeout)
    assert event["headers"]["destination"] == destination, event
    return json.loads(event["body"])


def test_the_quickstart_as_written_signs_in_pushes_from_a_view_and_a_shell_and_logs_out(walkthrough, served):
    site, log = served
    assert any("django-stomp-push" in line for line in walkthrough.installs), "the page gives no install line"
    assert "Starting ASGI/Daphne" in log.read_text(), f"runserver is not daphne's:\n{log.read_text()}"

    browser = HttpSession(site.http_url).login(USERNAME, PASSWORD)  # the page's login.html, LOGIN_REDIRECT_URL
    page = browser.get("/")
    assert f"Signed in as {USERNAME}" in page
    assert '/static/stomp.umd.min.js"' in page
    assert "StompJs" in browser.get("/static/stomp.umd.min.js")  # the bundle the page copied into notes/static/

    client = StompJsClient(site, browser.session_key)
    try:
        assert client.expect("connected")["headers"]["user-name"] == USERNAME
        client.command("subscribe", destination="/topic/activity", id="activity", headers={"receipt": "r1"})
        client.expect("receipt", id="r1")
        client.command("subscribe", destination="/user/queue/notices", id="notices", headers={"receipt": "r2"})
        client.expect("receipt", id="r2")

        assert browser.post("/save/") == 200  # the page's Save button
        received = {"/user/queue/notices": None, "/topic/activity": None}
        for _ in received:
            event = client.expect("message")
            received[event["headers"]["destination"]] = json.loads(event["body"])
        assert received == {"/user/queue/notices": {"text": "Saved."}, "/topic/activity": {"who": USERNAME}}

        assert walkthrough.shell_pushes, "the page pushes from no shell"
        for line in walkthrough.shell_pushes:
            walkthrough.sh(line)
        assert expect_message(client, "/topic/activity") == {"who": "the shell"}

        assert browser.logout() == 200  # lands on LOGOUT_REDIRECT_URL
        error = client.expect("stomp-error")
        assert error["headers"]["message"] == "logged out", error
        close = client.expect("ws-close")
        assert (close["code"], close["reason"]) == (1008, "logged out"), close
    finally:
        client.stop()


def test_the_stomppy_example_of_the_clients_page_signs_in_receives_and_stops_when_its_session_ends(walkthrough, served):
    site, _ = served
    [example] = [b for b in marked_blocks(CLIENTS) if (b.action, b.path) == ("example", "stomppy_client.py")]
    code = example.code
    for page_text, ours in (
        (":8000", f":{site.port}"),
        (", 8000", f", {site.port}"),
        ('"alice", "secret"', f'"{USERNAME}", "{PASSWORD}"'),
    ):
        assert page_text in code, f"the stomp.py example no longer has {page_text!r}"
        code = code.replace(page_text, ours)
    script = walkthrough.root / "stomppy_client.py"
    script.write_text(code)
    process = subprocess.Popen(
        [sys.executable, str(script)], env=walkthrough.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    try:
        pusher = HttpSession(site.http_url).login(USERNAME, PASSWORD)
        # The script subscribes right after its CONNECTED, which the test cannot see: save until a notice arrives.
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the stomp.py example received nothing:\n{stop_reading(process)}")
            assert pusher.post("/save/") == 200
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            assert line.startswith("message: /"), line
            break
        walkthrough.sh(f"python manage.py shell -c '{DELETE_EVERY_SESSION}'")  # the admin's delete, in bulk
        assert process.wait(15) == 0, stop_reading(process)
        reader.join(5)
        rest = []
        while not lines.empty():
            rest.append(lines.get())
        assert "server said: session ended\n" in rest, rest  # the ERROR frame, then the loop ends with the close
    finally:
        stop_reading(process)


def stop_reading(process: subprocess.Popen) -> str:
    """Stop ``process`` if it still runs; its stderr."""
    if process.poll() is None:
        process.kill()
        process.wait(5)
    stderr = process.stderr.read() if process.stderr and not process.stderr.closed else ""
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return stderr
