"""One STOMP connection bound to a Django session, on any transport: what the delivery hub delivers to.

:class:`Endpoint` puts the rooms together (inbound, outbound, heart-beats, session binding, frame actions) and is
the hub's :class:`~django_stomp_push.hub.Outlet`. A transport's glue creates it, calls :meth:`Endpoint.open` when
the client connects, :meth:`Endpoint.received` with what the client sends, and :meth:`Endpoint.shutdown` when the
client is gone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..close_reasons import CLOSE_POLICY_VIOLATION, RECONNECT_NOW, reconnect_for, session_end_detail
from ..conf import Config, get_config
from ..hub import Hub
from ..push import encode_body
from ..stomp import PushedMessage, ServerConnection, StompError, Subscription
from ..untrusted import for_log
from .actions import FrameActions
from .admission import gate
from .binding import SessionBinding
from .heartbeats import Heartbeats
from .inbound import Inbound
from .outbound import Outbound
from .timers import Timers
from .transport import Transport

logger = logging.getLogger("django_stomp_push")

#: Seconds a closed connection lets the event it is carrying out finish before cancelling it.
SHUTDOWN_GRACE = 1.0

_connection_ids = itertools.count(1)


@dataclass(frozen=True)
class Peer:
    """Who is on the other end, as the transport's handshake established it."""

    session: Any  # the Django session object of the handshake's cookie (its key binds the connection), or None
    cookies: dict[str, str]  # the handshake's cookies (the CSRF check reads the CSRF cookie)

    @property
    def session_key(self) -> str | None:
        return getattr(self.session, "session_key", None) if self.session is not None else None


class Endpoint:
    """A STOMP 1.0/1.1/1.2 connection; see the module docstring."""

    def __init__(self, transport: Transport, peer: Peer, config: Config | None = None) -> None:
        self.config = config = config or get_config()
        self.peer = peer
        self.connection_id = f"{id(self):x}-{next(_connection_ids)}"
        self.protocol = ServerConnection(config.limits, heartbeat=config.heartbeat)
        self.user: Any = None
        self.user_key: str | None = None
        self.session_key_hash: str | None = None
        self.hub: Hub | None = None
        #: True while CONNECT joins the user's and session's groups: that CONNECT, not a close meanwhile, unbinds.
        self.binding_in_progress = False
        self.closing = False
        self.topic_subs: list[Subscription] = []
        self.user_subs: dict[str, list[Subscription]] = {}
        self.loop = asyncio.get_running_loop()
        self.timers = Timers(self.loop)
        self.actions = FrameActions(self)
        self.outbound = Outbound(
            transport, config.outbound_buffer_size, config.send_timeout, self._slow_consumer, self.connection_id
        )
        self.inbound = Inbound(
            self.protocol,
            config.inbound_buffer_size,
            self.actions.carry_out,
            self.actions.protocol_error,
            lambda: self.binding.activity(heartbeat=True),
        )
        self.heartbeats = Heartbeats(self.timers, self.inbound, self.outbound, config.heartbeat_grace, self._silent)
        self.binding = SessionBinding(self.timers, config, self.end_session, self._notify_page, self.connection_id)
        self._transport = transport
        self._message_ids = itertools.count(1)
        self.gate = gate()

    # -- the transport's side ------------------------------------------------------------------------------

    def open(self, subprotocol: str | None) -> None:
        """The client connected: accept at once (a close before accept would reach it as HTTP 403, without a
        reason) and give it ``CONNECT_TIMEOUT`` seconds to send CONNECT."""
        self.outbound.accept(subprotocol)
        if self.gate.admit(self):  # else refused at once: "server busy" (1013) or "server restarting" (1012)
            self.timers.set("connect", self.config.connect_timeout, self.actions.connect_timed_out)

    def received(self, data: bytes) -> None:
        """What the client sent (any part of a frame, or several frames); never waits."""
        if not self.closing:
            self.inbound.received(data)

    async def wait_for_room(self) -> None:
        """Before reading more: wait while too much of what the client sent waits to be carried out."""
        if self.inbound.full:
            await self.inbound.wait_for_room(self._transport.pause_reading, self._transport.resume_reading)

    async def shutdown(self) -> None:
        """The client is gone: release everything."""
        self.closing = True
        self._unregister()
        self.gate.connected(self)
        await self.inbound.finish(SHUTDOWN_GRACE)
        for task in self.binding.stop():
            task.cancel()
        await self.outbound.stop()

    # -- the hub's side (Outlet) ---------------------------------------------------------------------------

    @property
    def session(self) -> Any:
        """The Django session object of the handshake (for handlers: ``message.session``)."""
        return self.peer.session

    @property
    def session_key(self) -> str | None:
        """The key of the bound Django session (kept in this process only; the hub checks it after a sweep)."""
        return self.binding.key

    def deliver(self, subscription: Subscription, message: PushedMessage) -> None:
        """Queue one MESSAGE for ``subscription`` (called by the hub; never awaits)."""
        if self.closing:
            return
        try:
            frame = self.protocol.message(subscription, message, str(next(self._message_ids)))
        except StompError as exc:
            self.close(exc.close_code, exc.message, exc.detail)
            return
        self.outbound.frame(frame)

    def user_subscriptions(self, destination: str) -> Iterable[Subscription]:
        return self.user_subs.get(destination, ())

    def end_session(self, reason: str) -> None:
        """The bound Django session ended: ERROR saying ``reason``, then close 1008 (called by the hub)."""
        self.close(CLOSE_POLICY_VIOLATION, reason, session_end_detail(reason))

    def check_send(self, now: float) -> None:
        """Close the client if one send has been stuck longer than SEND_TIMEOUT (called by the hub's watchdog)."""
        if not self.closing and self.outbound.stuck(now):
            self._slow_consumer(f"one send has taken more than {self.config.send_timeout:g} seconds")

    # -- writing -------------------------------------------------------------------------------------------

    def deliver_local(self, destination: str, body: Any, headers: dict[str, str] | None = None) -> int:
        """Send a MESSAGE to this connection's own subscriptions of ``destination``; returns how many."""
        subs = self.user_subs.get(destination, ())
        if not subs:
            return 0
        payload, content_type = encode_body(body)
        message = PushedMessage(destination, payload, content_type, headers or {})
        for sub in tuple(subs):
            self.deliver(sub, message)
        return len(subs)

    def reply(self, destination: str, body: Any, headers: dict[str, str] | None = None) -> int:
        """:meth:`deliver_local` from any thread (a handler's worker thread hands it to this event loop)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            return self.deliver_local(destination, body, headers)
        self.loop.call_soon_threadsafe(self.deliver_local, destination, body, headers)
        return 1

    def send_frame(self, frame: bytes) -> None:
        """A frame the protocol built (CONNECTED, RECEIPT), sent as a text message."""
        self.outbound.frame(frame.decode("utf-8", "replace"))

    def close(
        self,
        code: int,
        message: str | None = None,
        detail: str = "",
        receipt_id: str | None = None,
        headers: dict[str, str] | None = None,
        reconnect: str | None = None,
    ) -> None:
        """Send an ERROR frame (when ``message`` is given), then close with ``code`` and ``message`` as reason.

        The ERROR's ``reconnect`` header tells the client what to do next: ``reconnect`` if given, else what
        :func:`~..close_reasons.reconnect_for` says of ``code``.
        """
        if self.closing:
            return
        self.closing = True
        self._unregister()
        self.inbound.stop()
        self.gate.connected(self)
        error = None
        if message is not None:
            headers = {"reconnect": reconnect or reconnect_for(code), **(headers or {})}
            error = self.protocol.error(message, detail, receipt_id, headers).decode("utf-8", "replace")
            logger.info("django-stomp-push: closing %s with %d: %s", self.connection_id, code, for_log(message))
        self.outbound.close(code, (message or "")[:120], error)

    def _slow_consumer(self, why: str) -> None:
        if self.hub is not None:
            self.hub.stats["slow_consumers"] += 1
        logger.warning("django-stomp-push: closing slow consumer %s: %s", self.connection_id, for_log(why))
        self.outbound.drop()
        detail = f"the client is not reading: {why}"
        self.close(CLOSE_POLICY_VIOLATION, "slow consumer", detail, reconnect=RECONNECT_NOW)

    def _silent(self, detail: str) -> None:
        self.close(CLOSE_POLICY_VIOLATION, "heart-beat timeout", detail, reconnect=RECONNECT_NOW)

    def _notify_page(self, body: dict[str, Any]) -> int:
        return self.deliver_local(self.config.session_destination, body)

    def _unregister(self) -> None:
        self.timers.cancel_all()
        self.binding.ended = True
        hub = self.hub
        if hub is not None:
            for sub in self.topic_subs:
                hub.remove_subscription(self, sub)
            self.topic_subs.clear()
            if not self.binding_in_progress:  # else the CONNECT in progress unbinds once its joins are done
                hub.unbind(self)
