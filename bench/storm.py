"""Many clients opening at once: the load, the servers it runs against, what failed and why, and a run's figures.

A *storm* is loadgen.mjs's "storm" mode: N clients, each sending the cookie of a signed-in session of its own,
``in_flight`` of them opening at a time (all N for a storm), each doing the WebSocket handshake, CONNECT and
SUBSCRIBE with a receipt; and one *sentinel* client, connected before the storm, heart-beating every second
throughout it. A client refused (ERROR ``server busy`` with ``reconnect: later`` and a ``retry-after``, then close
1013) tries again as the package's client helper (``stomp-push.mjs``) would: after the retry-after plus up to
:data:`RETRY_AFTER_JITTER_MS`, until subscribed or until an attempt would start past the ramp timeout. Any other
failure ends the client: it is what the storm measures. Used by the ``connect_storm`` scenario;
``deploy_restart`` reuses the signed-in application and the failure kinds, with loadgen.mjs's "reconnect" mode.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .servers import ASGI_SERVERS, TARGETS

if TYPE_CHECKING:
    from .harness import Bench, RunResult

#: what a client waits at most for its handshake, CONNECTED and RECEIPT (a browser would wait longer still)
CONNECT_TIMEOUT_S = 60
SENTINEL_HEARTBEAT_MS = 1_000
#: what a refused client adds at most to the server's retry-after: the client helper's ``retryAfterJitter`` default
RETRY_AFTER_JITTER_MS = 1_000
#: django-stomp-push under the signed-in settings, from any checkout (bench/portable/)
SIGNED_IN_APP = "signed_in_asgi:application"
#: ASGI targets a storm runs, each under every chosen ASGI server
SIGNED_IN_TARGETS = ("baseline", "ours")
#: targets without sessions: they ignore the cookies, so they run once for every session database
SESSIONLESS_TARGETS = ("websockets", "rabbitmq")


@dataclass(frozen=True)
class Column:
    """One server of a storm table: a target, and for an ASGI target the server running it."""

    key: str
    label: str
    target: str
    server: str = "daphne"
    app: str | None = None

    @property
    def signed_in(self) -> bool:
        """Its clients send their session cookies, and it checks them: the session database matters."""
        return self.app is not None


def columns(bench: Bench) -> list[Column]:
    """The storm's servers in this run: the baselines first, then django-stomp-push under each ASGI server."""
    out = [Column(key, TARGETS[key].label, key) for key in SESSIONLESS_TARGETS if key in bench.targets]
    for target in (t for t in SIGNED_IN_TARGETS if t in bench.targets):
        for server in bench.asgi_servers:
            label = f"{TARGETS[target].label}, {ASGI_SERVERS[server].label}"
            out.append(Column(f"{target}@{server}", label, target, server, SIGNED_IN_APP))
    return out


def load(clients: int, in_flight: int, cookies: list[str] | None, sentinel_cookie: str | None) -> dict[str, Any]:
    """A loadgen.mjs config: ``clients`` clients, ``in_flight`` at a time; ``cookies[i]``: client i's Cookie."""
    ramp_timeout = 120 + clients / 20  # when the last attempt may still start (in_flight < clients, or a retry)
    return {
        "mode": "storm",
        "subscribers": clients,
        "connect_concurrency": in_flight,
        "connect_timeout_s": CONNECT_TIMEOUT_S,
        "ramp_timeout_s": ramp_timeout,
        "retry_refused": True,
        "retry_after_jitter_ms": RETRY_AFTER_JITTER_MS,
        "deadline_s": ramp_timeout + CONNECT_TIMEOUT_S + 60,
        "cookies": cookies,
        "sentinel_heartbeat_ms": SENTINEL_HEARTBEAT_MS,
        "sentinel_cookie": sentinel_cookie,
    }


def timeout(config: dict[str, Any]) -> float:
    """How long the harness waits for a storm's load generator."""
    return float(config["deadline_s"]) + 30


#: a failure reason from loadgen.mjs -> what happened, in the words of the issue tracker
_KINDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^ECONNRESET$"), "TCP reset"),
    (re.compile(r"^ECONNREFUSED$"), "TCP connection refused"),
    (re.compile(r"^socket hang up$"), "closed before the HTTP response"),
    (re.compile(r"^Opening handshake has timed out$"), "handshake timeout"),
    (re.compile(r"^timeout waiting for the WebSocket handshake$"), "handshake timeout"),
    (re.compile(r"^HTTP (\d+) on WebSocket upgrade$"), r"HTTP \1"),
    (re.compile(r"^ERROR frame: (.*)$"), r"ERROR \1"),
    (re.compile(r"^closed (\d+) before subscribed$"), r"close \1"),
    (re.compile(r"^timeout waiting for (CONNECTED|RECEIPT)$"), r"no \1 in time"),
    (re.compile(r"^ramp timeout$"), "not started (ramp timeout)"),
    (re.compile(r"^refused until the ramp timeout$"), "still refused at the ramp timeout"),
]


def failure_kind(reason: str) -> str:
    """The kind of a client's failure: TCP reset, handshake timeout, HTTP status, ERROR and its message, close code."""
    for pattern, kind in _KINDS:
        match = pattern.match(reason)
        if match:
            return match.expand(kind)
    return reason


def failures_by_kind(errors: dict[str, int]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for reason, count in errors.items():
        kinds[failure_kind(reason)] += count
    return kinds


def describe_failures(failed: int, clients: int, errors: dict[str, int]) -> str:
    """e.g. '2,415 of 3,000 failed: TCP reset x2,400, handshake timeout x15' (most frequent first)."""
    kinds = ", ".join(f"{kind} x{count:,}" for kind, count in failures_by_kind(errors).most_common())
    return f"{failed:,} of {clients:,} failed" + (f": {kinds}" if kinds else "")


@dataclass
class Outcome:
    """What one storm measured."""

    clients: int
    connected: int
    #: clients not subscribed at the end: each failed for good (a refused client tried again until the ramp timeout)
    failed: int
    errors: dict[str, int]
    #: refused attempts (ERROR ``server busy``, close 1013), and the clients refused at their first attempt
    refusals: int
    refused_first: int
    ramp_s: float
    connects_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    #: the sentinel's close code and ERROR message when the server closed it during the storm
    sentinel_closed: str | None
    sentinel_silence_ms: float | None
    #: the run had a sentinel (the table says whether it was closed)
    sentinel_seen: bool = False

    @classmethod
    def of(cls, result: RunResult, clients: int) -> Outcome:
        ready, measured = result.ready, result.measured
        sentinel = measured.get("sentinel") or {}
        closed = sentinel.get("closed")
        return cls(
            clients=clients,
            connected=int(ready.get("connected", 0)),
            failed=int(ready.get("failed", 0)),
            errors=dict(ready.get("errors", {})),
            refusals=int(ready.get("refusals", 0)),
            refused_first=int(ready.get("refused_first", 0)),
            ramp_s=float(ready.get("ramp_s", 0.0)),
            connects_per_s=float(measured.get("connects_per_s") or 0.0),
            p50_ms=measured.get("p50_ms"),
            p99_ms=measured.get("p99_ms"),
            sentinel_closed=None if closed is None else f"{closed} ({sentinel.get('error') or 'no ERROR frame'})",
            # comparable between servers heart-beating at the period the sentinel asked for only
            sentinel_silence_ms=sentinel.get("max_silence_ms")
            if sentinel.get("server_heartbeat_ms") == SENTINEL_HEARTBEAT_MS
            else None,
            sentinel_seen=bool(sentinel),
        )

    @property
    def all_subscribed(self) -> bool:
        return self.failed == 0 and self.connected == self.clients

    def notes(self) -> list[str]:
        notes = [describe_failures(self.failed, self.clients, self.errors)] if self.failed else []
        if self.sentinel_closed:
            every = f"{SENTINEL_HEARTBEAT_MS} ms"
            notes.append(f"the client heart-beating every {every} was closed: {self.sentinel_closed}")
        return notes

    def refused(self) -> dict[str, float | None]:
        """Subscribed clients, clients refused at their first attempt, refused attempts: side figures."""
        return {
            "clients subscribed": self.connected,
            "first attempts refused": self.refused_first,
            "refusals (1013)": self.refusals,
        }

    def extras(self, result: RunResult) -> dict[str, float | None]:
        return {
            **self.refused(),
            "median client wait": self.p50_ms,
            "p99 client wait": self.p99_ms,
            "connects/s": self.connects_per_s,
            "sentinel's longest silence": self.sentinel_silence_ms,
            "server CPU": result.server_cpu_pct,
            "load generator CPU": result.loadgen_cpu_pct,
            "redis CPU": result.redis_cpu_pct,
            "other CPU": result.other_cpu_pct,
            "server RSS": result.rss_end,
        }
