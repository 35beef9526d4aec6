"""Child processes of the harness: each in its own session, logging to a file, stopped with its process group,
so nothing outlives a run."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


#: top-level modules of this checkout that servers of any checkout import (see bench/portable/signed_in_settings.py)
PORTABLE = REPO / "bench" / "portable"


def pythonpath(root: Path) -> str:
    """The checkout (bench, django_stomp_push), its test project's directory (testproject, demo), then this
    checkout's portable settings (last: they never shadow a module of ``root``)."""
    return os.pathsep.join([str(root), str(root / "testproject"), str(PORTABLE)])


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
