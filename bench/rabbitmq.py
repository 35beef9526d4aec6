"""A private RabbitMQ node with the Web-STOMP plugin: the broker baseline of the benchmarks.

Everything of the node is its own: node name ``bench-<pid>-<n>@localhost``, AMQP, distribution and Web-STOMP ports
(free ones, on 127.0.0.1), an ``epmd`` on a port of its own, and a temporary directory holding its configuration,
database, logs, enabled-plugins file and Erlang cookie. A system node (``rabbit@localhost`` on 5672/25672, with
the system's epmd on 4369) is never touched, and stopping the node stops only the processes started here.

Web-STOMP listens at ``ws://127.0.0.1:<port>/ws``. A CONNECT without ``login``/``passcode`` logs in as the
plugin's default user, guest/guest, which RabbitMQ accepts from loopback addresses only (enough here); the
``host`` header names the virtual host, so clients send ``host:/``. The plain STOMP listener (61613) is off.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

from .processes import Process, ServerFailed, free_port

WS_PATH = "/ws"
#: what a STOMP client sends to RabbitMQ: the default virtual host, the default user
CONNECT_HEADERS = {"host": "/", "login": "guest", "passcode": "guest"}
#: Debian/Ubuntu install a wrapper as /usr/sbin/rabbitmq-server that switches to the rabbitmq user; the
#: real script (which honours RABBITMQ_* variables) is here.
DEBIAN_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
START_TIMEOUT = 90.0
STOP_GRACE = 30.0

_nodes = itertools.count(1)


def server_script() -> Path | None:
    """The rabbitmq-server script that starts a node as the current user, or None."""
    found = [os.environ.get("BENCH_RABBITMQ_SERVER"), DEBIAN_SCRIPT, shutil.which("rabbitmq-server")]
    for candidate in found:
        if candidate and os.path.isfile(candidate):
            text = Path(candidate).read_text(errors="replace")
            if "su rabbitmq" not in text:  # not the Debian wrapper
                return Path(candidate)
    return None


def version() -> str | None:
    """The installed RabbitMQ's version (from its directory, e.g. rabbitmq_server-3.10.8), or None."""
    script = server_script()
    if script is None:
        return None
    return script.resolve().parent.parent.name.rpartition("-")[2] or "?"


def unavailable() -> str | None:
    """Why a private node cannot be started here, or None."""
    script = server_script()
    if script is None:
        return "rabbitmq-server is not installed"
    if shutil.which("epmd") is None:
        return "epmd (Erlang) is not on PATH"
    plugins = script.resolve().parent.parent / "plugins"
    if not glob.glob(str(plugins / "rabbitmq_web_stomp-*")):
        return f"the rabbitmq_web_stomp plugin is not in {plugins}"
    return None


def config_text(web_stomp_port: int) -> str:
    """The node's rabbitmq.conf: Web-STOMP on 127.0.0.1, no plain STOMP listener."""
    return "\n".join(
        [
            f"web_stomp.tcp.port = {web_stomp_port}",
            "web_stomp.tcp.ip = 127.0.0.1",
            "stomp.listeners.tcp = none",
            "log.console = false",
            "",
        ]
    )


def node_env(root: Path, nodename: str, ports: dict[str, int]) -> dict[str, str]:
    """The environment that makes rabbitmq-server start a node living in ``root``."""
    return {
        "HOME": str(root),  # the Erlang cookie
        "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),  # not /etc's, which names the system node
        "RABBITMQ_NODENAME": nodename,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(ports["amqp"]),
        "RABBITMQ_DIST_PORT": str(ports["dist"]),
        "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
        "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
        "RABBITMQ_LOG_BASE": str(root / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(root / "node.pid"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_PORT": str(ports["epmd"]),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }


class RabbitMQ:
    """A started private node; :meth:`stop` ends it and removes its directory."""

    def __init__(self, logs: Path, name: str = "rabbitmq") -> None:
        reason = unavailable()
        if reason:
            raise ServerFailed(reason)
        script = server_script()
        assert script is not None
        self.root = Path(tempfile.mkdtemp(prefix="bench-rabbitmq-"))
        self.nodename = f"bench-{os.getpid()}-{next(_nodes)}@localhost"
        self.ports = {"amqp": free_port(), "dist": free_port(), "epmd": free_port(), "web_stomp": free_port()}
        (self.root / "rabbitmq-env.conf").write_text("")
        (self.root / "rabbitmq.conf").write_text(config_text(self.ports["web_stomp"]))
        (self.root / "enabled_plugins").write_text("[rabbitmq_web_stomp].\n")
        env = node_env(self.root, self.nodename, self.ports)
        self.epmd: Process | None = None
        self.process: Process | None = None
        try:
            epmd_argv = ["epmd", "-port", str(self.ports["epmd"]), "-address", "127.0.0.1"]
            self.epmd = Process(epmd_argv, logs / f"{name}-epmd.log", env)
            self.epmd.wait_listening(self.ports["epmd"], timeout=10)
            self.process = Process([str(script)], logs / f"{name}.log", env)
            started = time.monotonic()
            self.process.wait_listening(self.ports["web_stomp"], timeout=START_TIMEOUT)
            self.started_in = time.monotonic() - started
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ports['web_stomp']}{WS_PATH}"

    def stop(self) -> None:
        """Stop the node (TERM to its process group, KILL after a grace period), then its epmd; remove its files."""
        for process, grace in ((self.process, STOP_GRACE), (self.epmd, 3.0)):
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop(grace)
        shutil.rmtree(self.root, ignore_errors=True)
