"""A server process's delivery hub without its WebSocket side: one stand-in of the ``scale`` benchmark.

Run as ``python -m bench.scale_hub`` with ``DJANGO_SETTINGS_MODULE=bench.settings_scale``: it sets Django up, starts
the package's hub (``get_hub()``) on the configured channel layer and subscribes one :class:`CountingOutlet` to
:data:`DESTINATION` through ``hub.add_subscription``, so the process joins the destination's group exactly as a
server with one subscriber does. It then speaks JSON lines: events on stdout, commands on stdin.

Pushes carry a JSON body ``{"p": phase, "n": number, "of": pushes in the phase, "t": send time, "l": 0|1}``
(``t`` on ``time.monotonic()``, one clock for every process of the machine). For each phase the outlet counts
distinct numbers and duplicates, keeps the time of the last delivery and, for phases with ``"l": 1``, each
delivery's latency.

Events: ``{"event": "ready"}`` once the group is joined; ``{"event": "done", ...}`` as soon as a phase's every
push arrived (see :meth:`Phase.summary`). Commands: ``{"cmd": "report", "phase": p}`` answers
``{"event": "report", ...}`` with what arrived so far (with ``"brief": true``: ``{"event": "progress", "phase": p,
"received": n}``); end of input stops the process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

DESTINATION = "/topic/scale-bench"


class Phase:
    """What one hub received of one phase's pushes."""

    def __init__(self, expected: int, latencies: bool) -> None:
        self.expected = expected
        self.seen = bytearray(expected)
        self.received = 0
        self.duplicates = 0
        self.last_at = 0.0
        self.latencies: list[float] | None = [] if latencies else None
        self.done = False

    def add(self, number: int, sent_at: float, now: float) -> bool:
        """Count one delivery; True when it completes the phase."""
        if not 0 <= number < self.expected or self.seen[number]:
            self.duplicates += 1
            return False
        self.seen[number] = 1
        self.received += 1
        self.last_at = now
        if self.latencies is not None:
            self.latencies.append(now - sent_at)
        return self.received == self.expected

    def summary(self, phase: int, event: str, hub_stats: dict[str, int]) -> dict[str, Any]:
        return {
            "event": event,
            "phase": phase,
            "expected": self.expected,
            "received": self.received,
            "duplicates": self.duplicates,
            "last_at": self.last_at,
            "latencies_ms": [round(x * 1000, 3) for x in self.latencies or ()],
            "layer_errors": hub_stats.get("layer_errors", 0),
        }


class CountingOutlet:
    """The hub's ``Outlet``, reduced to what the benchmark needs: each delivery rendered once, then counted."""

    user_key: str | None = None
    session_key_hash: str | None = None
    session_key: str | None = None

    def __init__(self, stats: dict[str, int]) -> None:
        self.phases: dict[int, Phase] = {}
        self.hub_stats = stats
        self.bad = 0

    def deliver(self, subscription: Any, message: Any) -> None:
        now = time.monotonic()
        # What the connection core does per subscriber: the MESSAGE frame, from the shared render of the push.
        message.frame("MESSAGE\nsubscription:0\nmessage-id:", "1", "1.2")
        try:
            body = json.loads(message.body)
            number, phase_id = int(body["n"]), int(body["p"])
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            return
        phase = self.phases.get(phase_id)
        if phase is None:
            phase = self.phases[phase_id] = Phase(int(body["of"]), bool(body.get("l")))
        if phase.add(number, float(body["t"]), now) and not phase.done:
            phase.done = True
            emit(phase.summary(phase_id, "done", self.hub_stats))

    def report(self, phase_id: int, brief: bool) -> dict[str, Any]:
        phase = self.phases.get(phase_id) or Phase(0, False)
        if brief:
            return {"event": "progress", "phase": phase_id, "received": phase.received}
        return {**phase.summary(phase_id, "report", self.hub_stats), "bad_bodies": self.bad}

    def user_subscriptions(self, destination: str) -> Iterable[Any]:
        return ()

    def end_session(self, reason: str) -> None:
        return None

    def check_send(self, now: float) -> None:
        return None


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def read_commands(loop: asyncio.AbstractEventLoop, commands: asyncio.Queue[dict[str, Any] | None]) -> None:
    """Stdin, line by line, onto the loop (a thread: reading must not block deliveries); None at its end."""
    for line in sys.stdin:
        if line.strip():
            loop.call_soon_threadsafe(commands.put_nowait, json.loads(line))
    loop.call_soon_threadsafe(commands.put_nowait, None)


async def main() -> None:
    from django_stomp_push.hub import get_hub
    from django_stomp_push.stomp import Subscription

    hub = await get_hub()
    outlet = CountingOutlet(hub.stats)
    await hub.add_subscription(outlet, Subscription(id="0", destination=DESTINATION))
    commands: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    threading.Thread(target=read_commands, args=(asyncio.get_running_loop(), commands), daemon=True).start()
    emit({"event": "ready"})
    while (command := await commands.get()) is not None:
        if command.get("cmd") == "report":
            emit(outlet.report(int(command["phase"]), bool(command.get("brief"))))
    await hub.stop()


if __name__ == "__main__":
    import django

    django.setup()
    asyncio.run(main())
