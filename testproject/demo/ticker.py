"""A clock pushed to /topic/clock once a second by the server process itself (one task per event loop)."""

import asyncio
import logging
import weakref

from django.utils import timezone

from django_stomp_push import apush

_started: "weakref.WeakSet[asyncio.AbstractEventLoop]" = weakref.WeakSet()
_tasks: set = set()
logger = logging.getLogger(__name__)


async def tick(every: float = 1.0) -> None:
    while True:
        now = timezone.now()
        try:
            await apush("/topic/clock", {"time": now.isoformat(timespec="seconds")})
        except Exception:  # e.g. Redis is restarting: skip this tick, the clock goes on with the next
            logger.warning("demo clock: push failed", exc_info=True)
        await asyncio.sleep(every - now.microsecond / 1e6 % every)


def with_ticker(app):
    async def wrapped(scope, receive, send):
        loop = asyncio.get_running_loop()
        if scope["type"] == "websocket" and loop not in _started:
            _started.add(loop)
            task = loop.create_task(tick())
            _tasks.add(task)
        return await app(scope, receive, send)

    return wrapped
