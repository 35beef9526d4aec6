"""The hub's channel-layer listener: one receive loop per process, and its recovery.

After an outage the listener calls ``recovered()``: the hub then checks its connections' sessions at once, so that a
logout whose broadcast was lost meanwhile closes its connections now rather than at their next revalidation.

channels-redis's pub/sub layer never fails a receive (its own task reconnects, and redis-py subscribes again), so on
that layer the listener learns of an outage by probing: every :data:`PROBE_INTERVAL` the hub publishes a probe to its
own channel; one not back within :data:`PROBE_TIMEOUT` starts an outage, the next one back ends it.

Behind a relay (:mod:`~.relay.client`) the relay's loss, and its own loss of Redis, are outages too: the relay
client subscribes again by itself and calls ``recovered()``.

channels-redis forgets group members after ``group_expiry`` (24 h by default) and keeps nothing across a Redis
restart, so the listener re-joins every group its hub needs periodically (``GROUP_REFRESH_INTERVAL``) and after
every channel-layer failure. A restart resets the connection of the receive loop's blocking read, so the loop fails
at once; until the hub has re-joined, pushes to the restarted Redis succeed and reach nobody. The listener therefore
retries the re-join every :data:`RECOVERY_INTERVAL` rather than with a growing backoff, and logs the outage once,
then once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .conf import get_config
from .layer_messages import PROBE
from .layers import groups_expire
from .outage import Outage
from .relay.client import RelayedLayer

logger = logging.getLogger("django_stomp_push")

#: seconds between re-join attempts while the channel layer fails: a restarted Redis is noticed this soon
RECOVERY_INTERVAL = 0.2
#: pub/sub layer: seconds between two probes, and how long one may take before the layer counts as failing
PROBE_INTERVAL = 0.5
PROBE_TIMEOUT = 2.0


def _cancelled() -> bool:
    """Has the running task been asked to cancel (Python 3.11+ tells; before, a stop cancels until it ends)?"""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling and cancelling())


def _one_line() -> str:
    """The exception being handled, in one line."""
    error = sys.exc_info()[1]
    return f"{type(error).__name__}: {error}"


class Listener:
    """Receives the hub's channel-layer messages and hands each to ``dispatch``; ``rejoin()`` joins every group of
    the hub again."""

    def __init__(
        self,
        alias: str,
        layer: Any,
        channel_name: str | None,
        rejoin: Callable[[], Awaitable[None]],
        dispatch: Callable[[dict[str, Any]], None],
        stats: dict[str, int],
        recovered: Callable[[], None] = lambda: None,
    ) -> None:
        self.alias = alias
        self.layer = layer
        self.channel_name = channel_name
        self.rejoin = rejoin
        self.dispatch = dispatch
        self.stats = stats
        self.recovered = recovered
        self._probe_back = 0  # the last probe that came back
        self._arrived = asyncio.Event()
        if isinstance(layer, RelayedLayer):  # its loss, or its loss of Redis, is an outage: the same recovery
            layer.on_reset = recovered

    async def run(self) -> None:
        if not groups_expire(self.layer):
            await self._run_probed()
            return
        refresh_every = get_config().group_refresh_interval
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + refresh_every
        outage: Outage | None = None
        while True:
            try:
                if outage is not None:
                    # Re-join before receiving: a restarted Redis has lost our groups, so no message would ever
                    # arrive to end a blocking receive. This raises while the layer is still unreachable.
                    await self.rejoin()
                    logger.warning(
                        "channel layer %r is back after %d failed receives; re-joining groups (%.1fs without it)",
                        self.alias,
                        outage.failures,
                        loop.time() - outage.started,
                    )
                    outage = None
                    self.recovered()
                timeout = max(0.1, next_refresh - loop.time())
                try:
                    message = await asyncio.wait_for(self.layer.receive(self.channel_name), timeout)
                except asyncio.TimeoutError:
                    message = None
                if loop.time() >= next_refresh:
                    next_refresh = loop.time() + refresh_every
                    await self.rejoin()
                if message is not None:
                    self.dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                if _cancelled():
                    # redis-py turns a cancellation that lands while a read times out into its own error: the
                    # task was cancelled all the same (a server shutting down, an event loop closing), so stop.
                    raise asyncio.CancelledError from None
                self.stats["layer_errors"] += 1
                if outage is None:
                    outage = Outage(loop.time())
                    logger.exception(
                        "django-stomp-push hub: channel layer %r receive failed; pushes and session closes are not "
                        "delivered to this process until it recovers; retrying every %.1fs",
                        self.alias,
                        RECOVERY_INTERVAL,
                    )
                elif outage.failed(loop.time()):
                    logger.error(
                        "django-stomp-push hub: channel layer %r still unreachable after %d attempts in %.0fs: %s",
                        self.alias,
                        outage.failures,
                        loop.time() - outage.started,
                        _one_line(),
                    )
                # A short fixed cadence, not a growing backoff: pushes to a restarted Redis reach nobody until
                # the groups are re-joined, so the hub must notice the restart as soon as it can. It does notice:
                # a restart resets the connection of the blocking read that is almost always in flight, and the
                # receive fails at once (tests/reliability/test_redis_restart.py restarts a real Redis). Between
                # two reads (a dispatch, channels-redis's bookkeeping: well under the time a restart takes)
                # redis-py would silently reconnect an idle pooled connection to the new, empty Redis.
                await asyncio.sleep(RECOVERY_INTERVAL)

    # -- channels-redis's pub/sub layer ----------------------------------------------------------------------

    async def _run_probed(self) -> None:
        """Receive without a timeout (the pub/sub layer unsubscribes a channel whose receive() is cancelled; its
        subscriptions do not expire), while :meth:`_probe` watches the layer."""
        probing = asyncio.get_running_loop().create_task(self._probe(), name="django_stomp_push probe")
        try:
            while True:
                message = await self.layer.receive(self.channel_name)
                if message.get("type") == PROBE:
                    self._probe_back = max(self._probe_back, int(message.get("seq", 0)))
                    self._arrived.set()
                else:
                    self.dispatch(message)
        finally:
            probing.cancel()
            if isinstance(self.layer, RelayedLayer):
                self.layer.close()

    async def _round_trip(self, seq: int, since: int) -> None:
        """Send probe ``seq``; return once any probe after ``since`` came back."""
        await self.layer.send(self.channel_name, {"type": PROBE, "seq": seq})
        while self._probe_back <= since:
            self._arrived.clear()
            await self._arrived.wait()

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        outage: Outage | None = None
        seq = before_outage = 0
        while True:
            # During an outage a probe goes out every RECOVERY_INTERVAL and any of them coming back ends it: one
            # sent before the layer had subscribed again is lost, and waiting for it would hide the recovery.
            await asyncio.sleep(PROBE_INTERVAL if outage is None else RECOVERY_INTERVAL)
            seq += 1
            since = seq - 1 if outage is None else before_outage
            error = ""
            try:
                await asyncio.wait_for(
                    self._round_trip(seq, since), PROBE_TIMEOUT if outage is None else RECOVERY_INTERVAL
                )
            except asyncio.CancelledError:
                raise
            except asyncio.TimeoutError:
                error = "no probe came back"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if self._probe_back > since:
                if outage is not None:
                    logger.warning(
                        "channel layer %r is back after %d failed probes; re-joining groups (%.1fs without it)",
                        self.alias,
                        outage.failures,
                        loop.time() - outage.started,
                    )
                    outage = None
                    await self.rejoin()
                    self.recovered()
                continue
            self.stats["layer_errors"] += 1
            if outage is None:
                outage, before_outage = Outage(loop.time()), seq - 1
                logger.error(
                    "django-stomp-push hub: channel layer %r receive failed (%s within %.1fs); pushes and session "
                    "closes are not delivered to this process until it recovers",
                    self.alias,
                    error,
                    PROBE_TIMEOUT,
                )
            elif outage.failed(loop.time()):
                logger.error(
                    "django-stomp-push hub: channel layer %r still unreachable after %d probes in %.0fs: %s",
                    self.alias,
                    outage.failures,
                    loop.time() - outage.started,
                    error,
                )
