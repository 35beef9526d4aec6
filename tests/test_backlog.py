"""The listen backlog check: the effective backlog read from a listening socket, the server's listener told apart
from the process's other sockets, the advice for each server, and one log line per real server process at its
first WebSocket (a warning under daphne's default backlog of 50, none with ``backlog=1024``)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time

import pytest

from django_stomp_push import backlog
from django_stomp_push.backlog import Listener

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(socket, "TCP_INFO"), reason="the backlog is read on Linux only"
)


def listening(size: int, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    sock.listen(size)
    return sock


def ss_send_q(port: int) -> int | None:
    """What ``ss -ltn`` shows as Send-Q (the backlog) for the listener on ``port``, through netlink's inet_diag."""
    if shutil.which("ss") is None:
        return None
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[2])


@linux_only
@pytest.mark.parametrize("size", [1, 50, 1024, 1_000_000])
def test_the_effective_backlog_is_read_from_the_socket_capped_by_somaxconn(size):
    cap = backlog.somaxconn()
    assert cap is not None and cap > 0
    with listening(size) as sock:
        read = backlog.listen_backlog(sock)
        assert read == min(size, cap)
        shown = ss_send_q(sock.getsockname()[1])
        assert shown in (None, read)  # the same figure as ss, when ss is there


@linux_only
def test_ipv6_listeners_too_and_nothing_for_a_socket_that_does_not_listen():
    try:
        sock = listening(77, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with sock, socket.socket() as idle:
        assert backlog.listen_backlog(sock) == 77
        assert backlog.listen_backlog(idle) is None


@linux_only
def test_the_servers_listener_is_the_one_with_an_accepted_connection():
    with listening(50) as server, listening(5) as metrics, listening(7):
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        port = server.getsockname()[1]
        outgoing = socket.create_connection(metrics.getsockname())  # a connection this process opened
        try:
            found = backlog.server_listeners()
        finally:
            for sock in (client, accepted, outgoing):
                sock.close()
    assert found == [Listener("127.0.0.1", port, 50)]


def test_the_backlog_needed_is_512_unless_admission_control_lets_fewer_wait():
    assert backlog.needed(2000) == 512
    assert backlog.needed(100) == 100


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("daphne", "daphne -e tcp:port=8000:interface=127.0.0.1:backlog=1024"),
        ("uvicorn", "start uvicorn with --backlog 2048"),
        ("gunicorn", "start gunicorn with --backlog 2048"),
        ("", "set the ASGI server's listen backlog to 1024 or more"),
    ],
)
def test_the_advice_names_the_fix_of_the_server_in_use(server, expected):
    text = backlog.advice(server, Listener("127.0.0.1", 8000, 50), 512, 4096)
    assert expected in text
    assert "somaxconn" not in text


def test_the_advice_names_the_sysctl_when_the_kernel_caps_the_backlog():
    capped = backlog.advice("daphne", Listener("127.0.0.1", 8000, 128), 512, 128)
    assert "net.core.somaxconn (now 128)" in capped and "sysctl -w net.core.somaxconn=4096" in capped
    assert "daphne -e" not in capped  # daphne asked for more: only the kernel's cap is in the way
    both = backlog.advice("daphne", Listener("::1", 8000, 50), 512, 128)
    assert r"interface=\:\:1" in both and "somaxconn" in both  # daphne's endpoint strings escape colons


def test_the_system_check_warns_when_somaxconn_is_below_what_a_storm_needs(tmp_path, monkeypatch, settings):
    settings.STOMP_PUSH = {}
    path = tmp_path / "somaxconn"
    monkeypatch.setattr(backlog, "SOMAXCONN", str(path))
    path.write_text("128\n")
    [warning] = backlog.check_somaxconn()
    assert warning.id == "stomp_push.W012" and "128" in warning.msg and "sysctl" in warning.hint
    path.write_text("4096\n")
    assert backlog.check_somaxconn() == []
    settings.STOMP_PUSH = {"ADMISSION_LIMIT": 100}
    path.write_text("128\n")
    assert backlog.check_somaxconn() == []
    path.unlink()
    assert backlog.check_somaxconn() == []  # not known: nothing said


# -- real server processes --------------------------------------------------------------------------------------


def backlog_lines(server, timeout: float = 10.0) -> list[str]:
    """The backlog check's log lines, once there is one (it runs in a thread after the first WebSocket)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.log().splitlines() if "django-stomp-push: listen backlog" in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@linux_only
@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "env", "warning", "info"),
    [
        ("daphne", {}, "is 50, below 512", None),
        ("daphne-backlog", {"DAPHNE_BACKLOG": "1024"}, None, ": 1024"),
        ("uvicorn", {}, None, ": 2048"),
        ("gunicorn", {"GUNICORN_BACKLOG": "100", "GUNICORN_WORKERS": "1"}, "is 100, below 512", None),
    ],
)
def test_one_line_per_server_process_at_its_first_websocket(kind, env, warning, info, project_factory, daphne_factory):
    from tests.reliability.clients import StompClient
    from tests.servers import DEMO_PASSWORDS

    if kind == "gunicorn":
        pytest.importorskip("gunicorn", reason="gunicorn is not installed (it is in the test extra)")
    server = daphne_factory(project_factory(), kind, **env)
    alice = server.login("alice", DEMO_PASSWORDS["alice"])
    assert backlog_lines(server, timeout=0.5) == []  # not before the first WebSocket

    async def connect_some() -> None:
        for _ in range(3):
            client = await StompClient.open(server, alice.session_key, subscribe=["/topic/news"])
            await client.close()

    asyncio.run(connect_some())
    lines = backlog_lines(server)
    time.sleep(0.5)  # a second line would come now
    assert backlog_lines(server) == lines and len(lines) == 1, lines
    [line] = lines
    address = f"127.0.0.1:{server.port}"
    if warning:
        assert f"listen backlog of {address} {warning}" in line
        fix = {
            "daphne": f"daphne -e tcp:port={server.port}:interface=127.0.0.1:backlog=1024",
            "gunicorn": "start gunicorn with --backlog 2048",
        }[kind]
        assert fix in line, line
    else:
        assert f"listen backlog of {address}{info}" in line, line
        assert "below" not in line
