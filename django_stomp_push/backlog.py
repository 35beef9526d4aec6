"""The listen backlog of the server's socket, checked once per process: is it long enough for a reconnect storm?

When every client reconnects at once (a deploy, a network blip), the kernel queues the handshakes the server has
not accepted yet, up to the listening socket's backlog, and drops the ones past it: clients see resets and
timeouts, before admission control (``ADMISSION_LIMIT``) can answer ``server busy``. daphne listens with Twisted's
backlog of 50 unless its endpoint string sets one; uvicorn and gunicorn default to 2048; the kernel caps every
backlog at ``net.core.somaxconn``.

**When.** At the first WebSocket connection of a process (:func:`check_once`, from the admission gate), in a thread
of its own: before that the listening socket may not exist yet (daphne and uvicorn import the application before
they listen), and only a connection tells which of the process's listening sockets is the server's.

**How.** Linux only: the process's own file descriptors (``/proc/self/fd``); for each listening TCP socket,
``TCP_INFO``, whose fields for a listener hold the effective backlog (already capped by ``somaxconn``: what
``ss -ltn`` shows as Send-Q). The server's listeners are those on the local port of a connection this process
accepted. One line is logged: INFO with the backlog, or a WARNING naming the fix for the server in use (daphne's
endpoint string, uvicorn's or gunicorn's ``--backlog``, the ``somaxconn`` sysctl) when it is below
:func:`needed`. Where it cannot be known (not Linux, a server on a Unix socket), nothing is said.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("django_stomp_push")

#: A backlog below this holds too few handshakes for a reconnect storm (unless ``ADMISSION_LIMIT`` is lower still).
FLOOR = 512
#: What the warning recommends (docs/deployment.md): 300 clients at once took daphne 1.17 s with 50, 0.42 s with this.
RECOMMENDED = 1024
SOMAXCONN = "/proc/sys/net/core/somaxconn"
_TCP_LISTEN = 10  # tcp_info.tcpi_state of a listening socket
#: struct tcp_info: 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked, sacked, ... For a listener,
#: Linux puts the accept queue's length in ``unacked`` and its limit (the effective backlog) in ``sacked``.
_LISTENER_FIELDS = struct.Struct("=II")
_LISTENER_OFFSET = 24
_TCP_INFO_SIZE = 104

_checked = False
_lock = threading.Lock()


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket of this process."""

    host: str
    port: int
    #: the effective backlog: the accept queue's limit
    backlog: int

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def needed(admission_limit: int) -> int:
    """The backlog a process needs: :data:`FLOOR`, or ``ADMISSION_LIMIT`` if lower (a process that lets fewer
    connections wait for their CONNECT refuses the rest anyway)."""
    return min(admission_limit, FLOOR)


def listen_backlog(sock: socket.socket) -> int | None:
    """The effective backlog of listening TCP socket ``sock`` (Linux), or None if it cannot be read."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, _TCP_INFO_SIZE)
    except OSError:
        return None
    if len(info) < _LISTENER_OFFSET + _LISTENER_FIELDS.size or info[0] != _TCP_LISTEN:
        return None
    _queued, limit = _LISTENER_FIELDS.unpack_from(info, _LISTENER_OFFSET)
    return int(limit)


def server_listeners(fd_dir: str = "/proc/self/fd") -> list[Listener] | None:
    """This process's listening TCP sockets that accepted a connection still open (the server's), or None when
    they cannot be known (no ``/proc``, no ``TCP_INFO``)."""
    if not hasattr(socket, "TCP_INFO"):
        return None
    try:
        fds = sorted(int(name) for name in os.listdir(fd_dir) if name.isdigit())
    except OSError:
        return None
    listeners: list[Listener] = []
    accepted_ports: set[int] = set()
    for fd in fds:
        try:
            if not os.readlink(f"{fd_dir}/{fd}").startswith("socket:"):
                continue
            copy = os.dup(fd)  # a copy: the server's descriptor is never touched
        except OSError:  # closed meanwhile
            continue
        try:
            sock = socket.socket(fileno=copy)
        except OSError:  # not a socket Python can wrap
            os.close(copy)
            continue
        with sock:
            _inspect(sock, listeners, accepted_ports)
    return [listener for listener in listeners if listener.port in accepted_ports]


def _inspect(sock: socket.socket, listeners: list[Listener], accepted_ports: set[int]) -> None:
    """Add ``sock`` to ``listeners`` if it listens, its local port to ``accepted_ports`` if it is connected."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return
    try:
        host, port = sock.getsockname()[:2]
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            backlog = listen_backlog(sock)
            if backlog is not None:
                listeners.append(Listener(host, port, backlog))
        else:
            sock.getpeername()  # connected (an outgoing connection's local port is an ephemeral one)
            accepted_ports.add(port)
    except OSError:
        return


def somaxconn() -> int | None:
    """The kernel's cap on every listen backlog (Linux, this network namespace), or None."""
    try:
        with open(SOMAXCONN) as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


def server_in_use() -> str:
    """Which server runs this process: "gunicorn", "daphne", "uvicorn", or "" when it is none of them."""
    if "gunicorn.arbiter" in sys.modules:  # a gunicorn worker (whatever its worker class)
        return "gunicorn"
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is not None and getattr(reactor, "running", False):  # INSTALLED_APPS' daphne imports it anywhere
        return "daphne"
    if "uvicorn.server" in sys.modules:
        return "uvicorn"
    return ""


def advice(server: str, listener: Listener, wanted: int, kernel_cap: int | None) -> str:
    """How to give ``listener`` a backlog of at least ``wanted`` under ``server`` (see :func:`server_in_use`)."""
    fixes = []
    if listener.backlog < wanted and (kernel_cap is None or listener.backlog < kernel_cap):
        size = max(RECOMMENDED, wanted)
        if server == "daphne":
            interface = listener.host.replace(":", r"\:")
            fixes.append(
                f"give daphne the backlog in an endpoint string instead of -b/-p: "
                f"daphne -e tcp:port={listener.port}:interface={interface}:backlog={size} ..."
            )
        elif server in ("uvicorn", "gunicorn"):
            fixes.append(f"start {server} with --backlog {max(size, 2048)} (its default is 2048)")
        else:
            fixes.append(f"set the ASGI server's listen backlog to {size} or more")
    if kernel_cap is not None and kernel_cap < wanted:
        fixes.append(
            f"raise the kernel's cap on every backlog, net.core.somaxconn (now {kernel_cap}): "
            "sysctl -w net.core.somaxconn=4096 (and in /etc/sysctl.d/ to keep it), then restart the server"
        )
    return "; ".join(fixes)


def check(admission_limit: int) -> None:
    """Log the backlog of each listening socket of the server in this process (see the module docstring)."""
    listeners = server_listeners()
    if not listeners:
        return
    wanted, cap, server = needed(admission_limit), somaxconn(), server_in_use()
    for listener in listeners:
        if listener.backlog >= wanted:
            logger.info("django-stomp-push: listen backlog of %s: %d", listener.address, listener.backlog)
            continue
        logger.warning(
            "django-stomp-push: listen backlog of %s is %d, below %d: in a reconnect storm (a deploy, a network "
            "blip) the kernel drops the handshakes past it, which clients see as resets and timeouts, before "
            "admission control (ADMISSION_LIMIT %d) can answer them. Fix: %s",
            listener.address,
            listener.backlog,
            wanted,
            admission_limit,
            advice(server, listener, wanted, cap),
        )


def check_once() -> None:
    """:func:`check` in a thread, the first time it is called in this process (at its first WebSocket)."""
    global _checked
    with _lock:
        if _checked:
            return
        _checked = True
    from .conf import get_config

    limit = get_config().admission_limit
    threading.Thread(target=_check_quietly, args=(limit,), name="stomp-push-backlog", daemon=True).start()


def _check_quietly(admission_limit: int) -> None:
    try:
        check(admission_limit)
    except Exception:  # a look at the process's sockets must never hurt the server
        logger.debug("django-stomp-push: could not read the listen backlog", exc_info=True)


def check_somaxconn(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """System check (deploy): ``net.core.somaxconn`` below what a reconnect storm needs caps every server's backlog."""
    from django.core import checks

    from .conf import get_config

    cap = somaxconn()
    try:
        wanted = needed(get_config().admission_limit)
    except Exception:  # an invalid STOMP_PUSH is reported by stomp_push.E001
        wanted = FLOOR
    if cap is None or cap >= wanted:
        return []
    return [
        checks.Warning(
            f"net.core.somaxconn is {cap}: the kernel caps every listen backlog at it, below the {wanted} "
            "handshakes a reconnect storm needs queued",
            hint="sysctl -w net.core.somaxconn=4096 (and in /etc/sysctl.d/ to keep it) on the servers' hosts",
            id="stomp_push.W012",
        )
    ]
