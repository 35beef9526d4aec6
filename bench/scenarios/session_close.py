"""Session end → ERROR + 1008 on every server: two daphne processes of django-stomp-push on one channels-redis,
with its core layer and with its pub/sub layer (those of ``--layers``; the pub/sub layer alone in a smoke run).

- Logout: each session has one connection on server A and one on server B; the session logs out with an HTTP
  ``POST /accounts/logout/`` to server B (Django's LogoutView). Measured from the request being sent to the STOMP
  ERROR (``message:logged out``, then close 1008) arriving on each connection. The logout's own HTTP response
  time, measured on the same requests, is the baseline: a close cannot be announced before the logout runs.
- Expiry: sessions whose expiry date passes with no request; measured from the row's ``expire_date`` to the
  ERROR (``message:session expired``) on each server (one clock: both on this machine).

Bystander sessions stay connected on both servers throughout; the run fails if any of them is closed, or if a
close has the wrong code or reason. Only django-stomp-push is measured: the baselines close nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..harness import Bench
from ..report import Measurement, Table, ms
from ..servers import LAYERS, PYTHONPATH, REPO
from . import Scenario

SETTINGS = "bench.settings_ours"
#: sessions logged out one after another (one sample each), sessions left to expire, bystanders
FULL = {"logouts": 200, "expiring": 200, "bystanders": 100, "spread_s": 5.0}
SMOKE = {"logouts": 10, "expiring": 6, "bystanders": 4, "spread_s": 1.0}
CONNECTS_IN_FLIGHT = 16
#: a pause between two logouts: samples are independent, not a burst
PAUSE_S = 0.05

CREATE_SESSIONS = """
import json, sys
import django
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session

count, expiry_from, spread = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
User = get_user_model()
user, _ = User.objects.get_or_create(username="bench")
out = []
for i in range(count):
    store = SessionStore()
    store.update({
        SESSION_KEY: str(user.pk),
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: user.get_session_auth_hash(),
    })
    if expiry_from:
        store.set_expiry(expiry_from + spread * i / max(1, count - 1))
    store.save()
    out.append(store.session_key)
rows = dict(Session.objects.filter(pk__in=out).values_list("pk", "expire_date"))
print(json.dumps([[key, rows[key].timestamp()] for key in out]))
"""


@dataclass
class Samples:
    http: list[float] = field(default_factory=list)
    same: list[float] = field(default_factory=list)
    other: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _env(db_path: Path, redis_url: str, layer: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DJANGO_DB_PATH": str(db_path),
        "REDIS_URL": redis_url,
        "REDIS_LAYER": LAYERS[layer].kind,  # the servers' layer (bench.server sets it for them)
        "PYTHONPATH": PYTHONPATH,
    }


#: The two-process layers this scenario runs on, by the layers given to ``--layers`` (either variant of each).
TWO_PROCESS_LAYERS = {"redis": "redis-2p", "redis-2p": "redis-2p", "pubsub": "pubsub-2p", "pubsub-2p": "pubsub-2p"}
#: How a table's title names each of them.
LAYER_TITLES = {"redis-2p": "channels-redis", "pubsub-2p": "channels-redis pub/sub"}


def layers_of(bench: Bench) -> list[str]:
    """channels-redis's core and pub/sub layers, as ``--layers`` names them; the recommended pub/sub layer alone
    when it names neither (a smoke run)."""
    chosen = [TWO_PROCESS_LAYERS[layer] for layer in bench.layers if layer in TWO_PROCESS_LAYERS]
    return list(dict.fromkeys(chosen)) or ["pubsub-2p"]


def _django(env: dict[str, str], *argv: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, *argv], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def create_sessions(env: dict[str, str], count: int, expiry_from: float = 0.0, spread: float = 0.0):
    """``count`` authenticated db sessions of one user: [(key, expire_date as epoch seconds)]."""
    out = _django(env, "-c", CREATE_SESSIONS, str(count), str(expiry_from), str(spread))
    return [(key, expire) for key, expire in json.loads(out)]


async def stomp_connect(url: str, session_key: str):
    import websockets

    parts = urlsplit(url)
    ws = await websockets.connect(
        url,
        subprotocols=["v12.stomp"],
        origin=f"http://{parts.netloc}",
        additional_headers={"Cookie": f"sessionid={session_key}"},
        open_timeout=30,
    )
    await ws.send("CONNECT\naccept-version:1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n\x00")
    frame = await asyncio.wait_for(ws.recv(), 30)
    if not frame.startswith("CONNECTED"):
        raise RuntimeError(f"CONNECT refused: {frame[:80]!r}")
    return ws


async def connect_all(urls: list[str], keys: list[str]) -> dict[tuple[str, str], object]:
    """One connection per (server, session); a bounded number of handshakes in flight."""
    limit = asyncio.Semaphore(CONNECTS_IN_FLIGHT)

    async def one(url: str, key: str):
        async with limit:
            return (url, key), await stomp_connect(url, key)

    pairs = await asyncio.gather(*(one(url, key) for key in keys for url in urls))
    return dict(pairs)


async def closed_with(ws, clock) -> tuple[float | None, str, int | None]:
    """Wait for the server's close: (clock() when the ERROR frame arrived, its message header, close code)."""
    import websockets

    at, message = None, ""
    try:
        while True:
            frame = await ws.recv()
            if isinstance(frame, str) and frame.startswith("ERROR"):
                at = clock()
                message = next((h[8:] for h in frame.split("\n") if h.startswith("message:")), "")
    except websockets.ConnectionClosed:
        pass
    return at, message, ws.close_code


async def http_logout(http_base: str, session_key: str) -> int:
    """POST /accounts/logout/ with the session cookie and a CSRF token, as a browser would (no redirect follow)."""
    parts = urlsplit(http_base)
    token = secrets.token_hex(16)  # 32 characters from CSRF's alphabet: a valid unmasked secret
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    request = (
        f"POST /accounts/logout/ HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Cookie: sessionid={session_key}; csrftoken={token}\r\nX-CSRFToken: {token}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    writer.write(request.encode())
    status = int((await reader.readline()).split()[1])
    await reader.read()
    writer.close()
    return status


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure_logouts(urls: list[str], keys: list[str], bystanders: dict, samples: Samples) -> None:
    server_a, server_b = urls
    connections = await connect_all(urls, keys)
    http_b = "http://" + urlsplit(server_b).netloc
    for key in keys:
        on_a, on_b = connections[(server_a, key)], connections[(server_b, key)]
        waits = [asyncio.create_task(closed_with(ws, time.perf_counter)) for ws in (on_a, on_b)]
        started = time.perf_counter()
        status = await http_logout(http_b, key)
        answered = time.perf_counter()
        try:
            (at_a, msg_a, code_a), (at_b, msg_b, code_b) = await asyncio.wait_for(asyncio.gather(*waits), 10)
        except asyncio.TimeoutError:
            samples.problems.append("a connection was still open 10 s after its logout")
            continue
        if status not in (200, 302) or (msg_a, code_a, msg_b, code_b) != ("logged out", 1008, "logged out", 1008):
            samples.problems.append(f"logout {status}: A {msg_a!r}/{code_a}, B {msg_b!r}/{code_b}")
            continue
        samples.http.append((answered - started) * 1000)
        samples.other.append((at_a - started) * 1000)
        samples.same.append((at_b - started) * 1000)
        await asyncio.sleep(PAUSE_S)
    _check_bystanders(bystanders, samples)


async def measure_expiry(urls: list[str], sessions: list[tuple[str, float]], bystanders: dict, samples: Samples):
    server_a = urls[0]
    connections = await connect_all(urls, [key for key, _ in sessions])
    if time.time() >= min(expire for _, expire in sessions):
        samples.problems.append("connecting took longer than the margin before the first expiry")
        return
    expiries = dict(sessions)
    waits = {
        (url, key): asyncio.create_task(closed_with(connections[(url, key)], time.time))
        for key, _ in sessions
        for url in urls
    }
    timeout = max(expiries.values()) - time.time() + 10
    results = await asyncio.wait_for(asyncio.gather(*waits.values()), timeout)
    for (url, key), (at, message, code) in zip(waits, results, strict=True):
        if at is None or message != "session expired" or code != 1008:
            samples.problems.append(f"expiry: {message!r}/{code}")
            continue
        (samples.other if url == server_a else samples.same).append((at - expiries[key]) * 1000)
    _check_bystanders(bystanders, samples)


def _check_bystanders(bystanders: dict, samples: Samples) -> None:
    closed = [ws for ws in bystanders.values() if ws.close_code is not None]
    if closed:
        samples.problems.append(f"{len(closed)} bystander connections were closed (codes {closed[0].close_code})")


async def _run_once(urls: list[str], env: dict[str, str], sizes: dict[str, float]) -> tuple[Samples, Samples]:
    bystander_keys = [key for key, _ in create_sessions(env, int(sizes["bystanders"]))]
    bystanders = await connect_all(urls, bystander_keys)
    logouts = Samples()
    keys = [key for key, _ in create_sessions(env, int(sizes["logouts"]))]
    await measure_logouts(urls, keys, bystanders, logouts)
    expiry = Samples()
    count = int(sizes["expiring"])
    # the margin covers connecting them all (2 per session at ~40 connects/s per server, with room to spare)
    margin = 3.0 + count / 10
    expiring = create_sessions(env, count, expiry_from=margin, spread=sizes["spread_s"])
    await measure_expiry(urls, expiring, bystanders, expiry)
    for ws in bystanders.values():
        await ws.close()
    return logouts, expiry


def run(bench: Bench) -> list[Table]:
    sizes = SMOKE if bench.smoke else FULL
    columns = {"http": "logout HTTP response (server B)", "other": "close on server A", "same": "close on server B"}
    note = (
        f"{int(sizes['logouts'])} logouts one after another (HTTP POST to server B; the session has one STOMP "
        f"connection on each server) and {int(sizes['expiring'])} sessions expiring with no request over "
        f"{sizes['spread_s']:g} s, while {int(sizes['bystanders'])} other sessions stay connected to both "
        "servers (the run fails if one of them is closed, or if a close has the wrong code or reason). "
        "Logout: from sending the request; expiry: from the row's expire_date. django-stomp-push only: "
        "the textbook design and the bare server never close a connection when its session ends."
    )
    layers = layers_of(bench)
    tables = {
        layer: Table(
            title=f"Session end → ERROR + close 1008 on every server (2 daphne processes, {LAYER_TITLES[layer]})",
            metric="latency, ms (lower is better); targets: logout p99 ≤ 50 ms, expiry ≤ 1 s",
            fmt=ms,
            row_header="event, quantile",
            columns=columns,
            baselines=["http"],
            extras={"samples": lambda x: f"{x:.0f}"},
            note=note,
        )
        for layer in layers
    }
    for repeat in range(bench.repeats):
        for layer in layers:  # interleaved: each repeat runs every layer
            _run_layer(bench, tables[layer], layer, f"session_close #{repeat + 1} {layer}", sizes, columns)
    return list(tables.values())


def _run_layer(
    bench: Bench, table: Table, layer: str, label: str, sizes: dict[str, float], columns: dict[str, str]
) -> None:
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
            db_path = Path(tmp) / "db.sqlite3"
            redis = bench._redis_server()
            env = _env(db_path, redis.url, layer)
            _django(env, "-m", "django", "migrate", "--noinput", "-v0")
            with bench.server("ours", layer, {"DJANGO_DB_PATH": str(db_path)}) as deployment:
                logouts, expiry = asyncio.run(_run_once(deployment.urls, env, sizes))
    except Exception as exc:  # a failed run is reported in its cells, the other scenarios go on
        bench.failures += 1
        bench.log(f"  {label}: failed: {type(exc).__name__}: {exc}")
        for row in ("logout, p50", "logout, p99", "expiry, p50", "expiry, p99"):
            for column in columns:
                if row.startswith("logout") or column != "http":
                    table.cell(row, column).fail(f"{type(exc).__name__}: {exc}")
        return
    for event, samples in (("logout", logouts), ("expiry", expiry)):
        if samples.problems:
            bench.failures += 1
        for q in (0.5, 0.99):
            row = f"{event}, p{round(q * 100)}"
            for column in columns:
                values = getattr(samples, column)
                if not values:
                    continue
                cell: Measurement = table.cell(row, column)
                cell.add(quantile(values, q), {"samples": len(values)}, samples.problems[:3])
        worst = max(samples.other + samples.same, default=float("nan"))
        median = statistics.median(samples.other + samples.same) if samples.other + samples.same else 0
        problems = f"; PROBLEMS: {samples.problems[:3]}" if samples.problems else ""
        bench.log(f"  {label} {event}: median {median:.1f} ms, max {worst:.1f} ms{problems}")


SCENARIO = Scenario("session_close", "Logout and expiry → ERROR + 1008 on two servers", run)
