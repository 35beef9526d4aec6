"""The process-local delivery hub.

One hub per server process (per event loop). It owns one channel-layer channel and joins the groups its local
connections need: one per subscribed ``/topic/`` destination, one per connected user, one per bound session,
and :data:`~.destinations.HUBS_GROUP`. A push therefore crosses the channel layer once per *process*, not once
per subscriber. The shared part of the MESSAGE frame is rendered once per push (``stomp.PushedMessage``); each
local subscriber gets its copy through its connection's bounded outbound buffer (:class:`Outlet`). No await
happens inside a broadcast,
and the hub iterates over a snapshot, so a connection that closes meanwhile cannot break it for the others.

Group membership goes through one bounded path per hub (:class:`~.membership.Membership`).

Its channel-layer listener (:mod:`~.listener`) receives, and recovers after a Redis restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from .close_reasons import SESSION_ENDED
from .conf import get_config
from .destinations import HUBS_GROUP, destination_group, session_group, user_group
from .layer_messages import END_SESSIONS, HUB_CHANNEL_PREFIX, SESSIONS_SWEPT, TOPIC_MESSAGE, USER_MESSAGE
from .layers import hub_layer, is_process_local, local_receivers, register_local
from .listener import Listener
from .membership import Membership
from .stomp import PushedMessage, Subscription

logger = logging.getLogger("django_stomp_push")

#: session keys per query when a hub checks its connections' sessions after a sweep
SWEEP_CHECK_SIZE = 1000
#: Seconds between the channel layer's recovery and the check of every connection's session: the session ends
#: broadcast during the outage and held by their senders arrive first, with their own reasons ("logged out").
RECOVERY_CHECK_DELAY = 2.0


#: ``find_swept(session_keys)``: which of them have no live session any more (see :meth:`Hub.end_swept_sessions`).
FindSwept = Callable[[list[str]], Awaitable[set[str]]]


class Outlet(Protocol):
    """What the hub needs from a connection (the consumer implements it)."""

    user_key: str | None
    session_key_hash: str | None

    @property
    def session_key(self) -> str | None: ...

    def deliver(self, subscription: Subscription, message: PushedMessage) -> None: ...

    def user_subscriptions(self, destination: str) -> Iterable[Subscription]: ...

    def end_session(self, reason: str) -> None: ...

    def check_send(self, now: float) -> None: ...


class Hub:
    """Local subscriptions of one process and its single channel-layer listener."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.layer = hub_layer(alias)
        #: With the in-memory layer, group sends are handed to the hub directly (see layers.py): no listener.
        self.local = is_process_local(self.layer)
        self.channel_name: str | None = None
        #: destination -> {(id(outlet), subscription id): (outlet, subscription)}
        self.topics: dict[str, dict[tuple[int, str], tuple[Outlet, Subscription]]] = {}
        self.users: dict[str, set[Outlet]] = {}
        #: Every connected (CONNECTed) connection of this process.
        self.outlets: set[Outlet] = set()
        self.sessions: dict[str, set[Outlet]] = {}
        #: The channel-layer groups this hub is in, and the bounded path that joins and leaves them.
        self.groups = Membership(self.layer, self.local)
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        #: Counters for logs and the benchmark: deliveries, slow consumers closed, layer errors.
        self.stats = {"pushes": 0, "deliveries": 0, "slow_consumers": 0, "layer_errors": 0, "sweep_checks": 0}
        #: the running check after a sweep's notice, and the reason of a notice that came in meanwhile
        self._sweep_check: asyncio.Task[None] | None = None
        self._sweep_again: str | None = None
        #: Which session keys a sweep deleted (set by the connection core through :func:`get_hub`).
        self.find_swept: FindSwept | None = None

    # -- life cycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        starting = self._starting
        if starting is None or (starting.done() and (starting.cancelled() or starting.exception() is not None)):
            starting = self._starting = asyncio.get_running_loop().create_task(self._start())
        # Shielded: a caller cancelled meanwhile (its client left) must not cancel, or fail with its
        # CancelledError, the start-up the other connections of this process are waiting for.
        await asyncio.shield(starting)

    async def _start(self) -> None:
        self.channel_name = self.groups.channel_name = await self.layer.new_channel(prefix=HUB_CHANNEL_PREFIX)
        await self.join(HUBS_GROUP)
        if not self.local:
            self._task = asyncio.get_running_loop().create_task(self._listener().run(), name="django_stomp_push hub")
        self._watch()

    def _listener(self) -> Listener:
        return Listener(
            self.alias, self.layer, self.channel_name, self.groups.rejoin, self.dispatch, self.stats, self._recovered
        )

    def _recovered(self) -> None:
        """The channel layer is back after an outage: session ends broadcast meanwhile may have been lost, so check
        every connection's session after :data:`RECOVERY_CHECK_DELAY` (a logout deleted its row) instead of at
        their next revalidation."""
        asyncio.get_running_loop().call_later(RECOVERY_CHECK_DELAY, self.sweep_noticed, SESSION_ENDED)

    def _watch(self) -> None:
        """Every fraction of SEND_TIMEOUT, let each connection check that its current send is not stuck.

        One timer per process rather than one per connection or per send: sends almost never block.
        """
        timeout = get_config().send_timeout
        now = asyncio.get_running_loop().time()
        for outlet in tuple(self.outlets):
            outlet.check_send(now)
        asyncio.get_running_loop().call_later(max(0.05, min(1.0, timeout / 3)), self._watch)

    async def stop(self) -> None:
        task = self._task
        if task is not None:
            # Cancel until it ends: redis-py can swallow a cancellation that lands as its read times out,
            # and channels-redis then starts another blocking read.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.5)
            self._task = None

    # -- groups ---------------------------------------------------------------------------------------------

    async def join(self, group: str) -> None:
        """Count one more local user of ``group``; return once the hub is in it (see :meth:`Membership.join`)."""
        await self.groups.join(group)

    def leave(self, group: str) -> None:
        """Count one local user of ``group`` less; the last one leaves the group on the channel layer."""
        self.groups.leave(group)

    async def _rejoin(self) -> None:
        await self.groups.rejoin()

    def has_joined(self, group: str) -> bool:
        return self.groups.has_joined(group)

    # -- registrations (called by connections) --------------------------------------------------------------

    async def add_subscription(self, outlet: Outlet, subscription: Subscription) -> None:
        destination = subscription.destination
        subs = self.topics.get(destination)
        if subs is None:
            subs = self.topics[destination] = {}
        subs[(id(outlet), subscription.id)] = (outlet, subscription)
        try:
            await self.join(destination_group(destination))
        except BaseException:
            self.remove_subscription(outlet, subscription, leave=False)
            raise

    def remove_subscription(self, outlet: Outlet, subscription: Subscription, leave: bool = True) -> None:
        destination = subscription.destination
        subs = self.topics.get(destination)
        if subs is None or subs.pop((id(outlet), subscription.id), None) is None:
            return
        if not subs:
            del self.topics[destination]
        if leave:
            self.leave(destination_group(destination))

    def _memberships(self, outlet: Outlet) -> list[tuple[dict[str, set[Outlet]], str, str]]:
        """(table, key, group) for the user and the session ``outlet`` is bound to."""
        return [
            (table, key, group(key))
            for table, key, group in (
                (self.users, outlet.user_key, user_group),
                (self.sessions, outlet.session_key_hash, session_group),
            )
            if key is not None
        ]

    async def bind(self, outlet: Outlet) -> None:
        """Register a connection under its user and session, joining their groups; a membership registered
        already is kept as it is (a connection binds its session first, and its user once the session is read).

        If a join fails or the caller is cancelled, the membership being joined is taken back here (the join
        gave its count back): :meth:`unbind` then releases exactly what was registered.
        """
        self.outlets.add(outlet)
        for table, key, group in self._memberships(outlet):
            members = table.setdefault(key, set())
            if outlet in members:
                continue
            members.add(outlet)
            try:
                await self.join(group)
            except BaseException:
                members.discard(outlet)
                if not members and table.get(key) is members:
                    del table[key]
                raise

    def unbind(self, outlet: Outlet) -> None:
        self.outlets.discard(outlet)
        for table, key, group in self._memberships(outlet):
            members = table.get(key)
            if members is None or outlet not in members:
                continue
            members.discard(outlet)
            if not members:
                del table[key]
            self.leave(group)

    # -- delivery -------------------------------------------------------------------------------------------

    def dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == TOPIC_MESSAGE:
            self.deliver_topic(message)
        elif kind == USER_MESSAGE:
            self.deliver_user(message)
        elif kind == END_SESSIONS:
            self.end_sessions(message["sessions"], message["reason"])
        elif kind == SESSIONS_SWEPT:
            self.sweep_noticed(message["reason"])
        else:
            logger.warning("django-stomp-push hub ignored a channel-layer message of type %r", kind)

    def deliver_topic(self, message: dict[str, Any]) -> None:
        subs = self.topics.get(message["destination"])
        if not subs:
            return
        pushed = _pushed(message)
        self.stats["pushes"] += 1
        delivered = 0
        for outlet, subscription in tuple(subs.values()):
            outlet.deliver(subscription, pushed)
            delivered += 1
        self.stats["deliveries"] += delivered

    def deliver_user(self, message: dict[str, Any]) -> None:
        outlets = self.users.get(message["user"])
        if not outlets:
            return
        self.deliver_to(tuple(outlets), message)

    def deliver_to(self, outlets: Iterable[Outlet], message: dict[str, Any]) -> None:
        """Deliver a user-destination message to the matching subscriptions of ``outlets``."""
        pushed = _pushed(message)
        for outlet in outlets:
            for subscription in tuple(outlet.user_subscriptions(message["destination"])):
                outlet.deliver(subscription, pushed)
                self.stats["deliveries"] += 1

    def end_sessions(self, hashes: Iterable[str], reason: str) -> int:
        ended = 0
        for key in hashes:
            for outlet in tuple(self.sessions.get(key, ())):
                outlet.end_session(reason)
                ended += 1
        return ended

    def sweep_noticed(self, reason: str) -> None:
        """A sweep committed deletes: check this process's connections, once more at most if a check is running
        (a long sweep notifies after every commit; the checks do not pile up)."""
        if self._sweep_check is not None and not self._sweep_check.done():
            self._sweep_again = reason
            return
        self._sweep_check = asyncio.get_running_loop().create_task(self._sweep_checks(reason))

    async def _sweep_checks(self, reason: str) -> None:
        while True:
            self.stats["sweep_checks"] += 1
            await self.end_swept_sessions(reason)
            reason, self._sweep_again = self._sweep_again, None  # type: ignore[assignment]  # None: done
            if reason is None:
                return

    async def end_swept_sessions(self, reason: str) -> int:
        """After ``expire_push_sessions`` deleted expired sessions: end every local connection whose session has no
        live row any more, its own expiry timer armed or not (the row may have expired earlier than this process
        knew). :attr:`find_swept` asks the session store, per :data:`SWEEP_CHECK_SIZE` sessions of this process's
        connections: the work grows with the connections here, not with the sessions the sweep deleted."""
        find_swept = self.find_swept
        if find_swept is None:  # no connection of this process was ever bound to a session
            return 0
        outlets_of: dict[str, list[Outlet]] = {}
        for outlet in tuple(self.outlets):
            if outlet.session_key:
                outlets_of.setdefault(outlet.session_key, []).append(outlet)
        keys = list(outlets_of)
        ended = 0
        for start in range(0, len(keys), SWEEP_CHECK_SIZE):
            try:
                gone = await find_swept(keys[start : start + SWEEP_CHECK_SIZE])
            except Exception:
                logger.exception("django-stomp-push could not check sessions after a sweep; their timers remain")
                return ended
            for key in gone:
                for outlet in outlets_of[key]:
                    if outlet in self.outlets:  # still open
                        outlet.end_session(reason)
                        ended += 1
        return ended


def _pushed(message: dict[str, Any]) -> PushedMessage:
    """The MESSAGE frame of a push, rendered (once per protocol version) when the first subscriber needs it."""
    return PushedMessage(message["destination"], message["body"], message["content_type"], message["headers"])


async def get_hub(alias: str | None = None, find_swept: FindSwept | None = None) -> Hub:
    """The started hub of the running event loop for channel layer ``alias``.

    ``find_swept(keys)`` tells which session keys a sweep deleted (the connection core passes the session
    store's; the hub itself knows no session store).
    """
    alias = alias or get_config().channel_layer
    hub = local_receivers(alias).get(asyncio.get_running_loop())
    if hub is None:
        hub = Hub(alias)
        register_local(alias, hub)
    if find_swept is not None:
        hub.find_swept = find_swept
    await hub.start()
    return hub
