"""The pusher of the ``scale`` benchmark: the package's ``apush``/``push`` as an application calls them.

Run as ``python -m bench.scale_push`` with ``DJANGO_SETTINGS_MODULE=bench.settings_scale``. Speaks JSON lines:
``{"event": "ready"}`` once Django is set up, then one command per line on stdin, each answered on stdout once
its pushes were all taken by the channel layer:

``{"cmd": "push", "phase": p, "count": n, "mode": "async"|"threads", "concurrency": c, "rate": r, "latency": 0|1}``

- ``async``: ``c`` coroutines on one event loop (the same loop for every command) each ``await apush(...)`` the
  next push until ``n`` were sent; with ``rate`` > 0 instead, open loop: push ``i`` starts at ``i / rate``
  seconds, without waiting for the earlier ones, and its body carries that scheduled time (a pusher falling
  behind shows as latency, not as a slower rate);
- ``threads``: ``c`` threads each call the synchronous ``push()`` until ``n`` were sent.

Answer: ``{"event": "pushed", "phase": p, "cpu_s", "wall_s", "t0", "t1", "errors", "error"}``: CPU time of this
process (``time.process_time()``: every thread, the loop ``push()`` sends from included) and wall time over the
command, its start and end on ``time.monotonic()``, failed pushes and the first error.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import threading
import time
from typing import Any

from bench.scale_hub import DESTINATION, emit


class Run:
    """One command's pushes: their bodies, and the errors they met."""

    def __init__(self, command: dict[str, Any]) -> None:
        self.phase = int(command["phase"])
        self.count = int(command["count"])
        self.concurrency = max(1, int(command.get("concurrency", 1)))
        self.rate = float(command.get("rate") or 0)
        self.latency = 1 if command.get("latency") else 0
        self.errors = 0
        self.error = ""

    def body(self, number: int, sent_at: float | None = None) -> dict[str, Any]:
        return {
            "p": self.phase,
            "n": number,
            "of": self.count,
            "t": time.monotonic() if sent_at is None else sent_at,
            "l": self.latency,
        }

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.error = self.error or f"{type(exc).__name__}: {exc}"

    async def pushing(self) -> None:
        from django_stomp_push import apush

        if self.rate > 0:
            await self._at_rate(apush)
            return
        numbers = iter(range(self.count))

        async def sender() -> None:
            for number in numbers:
                try:
                    await apush(DESTINATION, self.body(number))
                except Exception as exc:
                    self.failed(exc)

        await asyncio.gather(*(sender() for _ in range(self.concurrency)))

    async def _at_rate(self, apush: Any) -> None:
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        pending: set[asyncio.Task[None]] = set()

        async def one(number: int, at: float) -> None:
            try:
                await apush(DESTINATION, self.body(number, at))
            except Exception as exc:
                self.failed(exc)

        for number in range(self.count):
            at = start + number / self.rate
            if (delay := at - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(one(number, at))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)

    def threads(self) -> None:
        from django_stomp_push import push

        numbers = itertools.count()  # next() of one count is atomic in CPython: each number is sent once

        def sender() -> None:
            while (number := next(numbers)) < self.count:
                try:
                    push(DESTINATION, self.body(number))
                except Exception as exc:
                    self.failed(exc)

        workers = [threading.Thread(target=sender) for _ in range(self.concurrency)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


def run(command: dict[str, Any], loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    pushes = Run(command)
    cpu, t0 = time.process_time(), time.monotonic()
    if command.get("mode") == "threads":
        pushes.threads()
    else:
        loop.run_until_complete(pushes.pushing())
    t1 = time.monotonic()
    return {
        "event": "pushed",
        "phase": pushes.phase,
        "cpu_s": time.process_time() - cpu,
        "wall_s": t1 - t0,
        "t0": t0,
        "t1": t1,
        "errors": pushes.errors,
        "error": pushes.error,
    }


def main() -> None:
    loop = asyncio.new_event_loop()
    emit({"event": "ready"})
    for line in sys.stdin:
        if line.strip():
            emit(run(json.loads(line), loop))


if __name__ == "__main__":
    import django

    django.setup()
    main()
