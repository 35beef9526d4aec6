"""What each client frame does: CONNECT binds the session, SUBSCRIBE joins a destination, SEND reaches a handler
or a topic, COMMIT carries out a transaction. Each event is carried out on its own data, in frame order."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, cast

from django.contrib.auth.models import AnonymousUser

from .. import handlers
from ..close_reasons import (
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_SERVER_ERROR,
    RECONNECT_NOW,
)
from ..csrf import token_matches_cookie
from ..destinations import DestinationError, Kind, authorize, classify, session_hash, user_hash
from ..hub import Hub, get_hub
from ..layers import pipelines
from ..push import RESERVED_HEADERS, start_push
from ..stomp import (
    Commit,
    Connect,
    Disconnect,
    Event,
    Send,
    StompError,
    Subscribe,
    Subscription,
    Unsubscribe,
    error_headers,
)
from .binding import find_swept
from .session_batches import session_reads

if TYPE_CHECKING:
    from .endpoint import Endpoint

logger = logging.getLogger("django_stomp_push")

#: SENDs of one connection whose publication may be in flight at once; past it the connection waits for the
#: oldest (back-pressure on a client sending faster than the channel layer takes).
MAX_UNCONFIRMED_SENDS = 256


class FrameActions:
    """The frame actions of one :class:`~.endpoint.Endpoint`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.config = endpoint.config
        #: SENDs whose publication was started but not yet confirmed by the channel layer (pub/sub layer).
        self._unconfirmed: deque[asyncio.Future[None]] = deque()

    def connect_timed_out(self) -> None:
        if self.endpoint.protocol.state.name == "AWAITING_CONNECT":
            self.endpoint.close(
                CLOSE_POLICY_VIOLATION,
                "CONNECT timeout",
                f"no CONNECT frame within {self.config.connect_timeout:g} seconds of opening the WebSocket",
                reconnect=RECONNECT_NOW,
            )

    def protocol_error(self, exc: StompError) -> None:
        self.endpoint.close(exc.close_code, exc.message, exc.detail, exc.receipt_id, error_headers(exc))

    async def carry_out(self, event: Event) -> None:
        """Carry out one event, then answer its receipt; an exception closes with 1011 (logged)."""
        endpoint = self.endpoint
        try:
            if isinstance(event, Connect):
                await self._connect(event)
            elif isinstance(event, Subscribe):
                endpoint.binding.activity()
                await self._subscribe(event)
            elif isinstance(event, Unsubscribe):
                endpoint.binding.activity()
                self._unsubscribe(event)
            elif isinstance(event, Send):
                endpoint.binding.activity()
                await self._send(event, event.receipt)
            elif isinstance(event, Commit):
                await self._commit(event)
            # ACK/NACK, BEGIN/ABORT and DISCONNECT need nothing more: the protocol did the bookkeeping
            # (push-only: nothing is redelivered).
        except Exception:
            logger.exception("django-stomp-push: error while handling %s", type(event).__name__)
            endpoint.close(
                CLOSE_SERVER_ERROR, "internal server error", "the server failed to process a frame", event.receipt
            )
            return
        if event.receipt is not None and not endpoint.closing:
            endpoint.send_frame(endpoint.protocol.receipt(event.receipt))
        if isinstance(event, Disconnect):
            endpoint.close(CLOSE_NORMAL)

    async def _connect(self, event: Connect) -> None:
        endpoint, config = self.endpoint, self.config
        endpoint.timers.cancel("connect")
        if config.csrf_check and not self._csrf_ok(event.headers):
            endpoint.close(CLOSE_POLICY_VIOLATION, "CSRF check failed", "CONNECT needs an X-CSRFToken header")
            return
        hub = endpoint.hub = await get_hub(config.channel_layer, find_swept)
        session_key = endpoint.peer.session_key
        if session_key:
            endpoint.session_key_hash = session_hash(session_key)
        # Join the session's group before reading the session: a close broadcast meanwhile is not missed.
        if not await self._bind(hub):
            return
        # One round trip for the session's row, expiry, user and auth hash, batched with the other connections'.
        state = await session_reads().read(session_key) if session_key else None
        if endpoint.closing:
            return
        if state is None:
            if not config.allow_anonymous:
                endpoint.close(
                    CLOSE_POLICY_VIOLATION,
                    "no valid session",
                    "the WebSocket carried no Django session cookie, or its session has ended or expired; "
                    "sign in and reconnect",
                )
                return
            hub.unbind(endpoint)
            endpoint.session_key_hash = None
        user = endpoint.user = state.user if state is not None and state.user is not None else AnonymousUser()
        if user.is_authenticated:
            endpoint.user_key = user_hash(user)
            if not await self._bind(hub):
                return
        headers = {}
        if endpoint.user_key is not None:
            headers["user-name"] = user.get_username()
        if state is not None and state.expires_at is not None:
            headers["session-expires"] = str(int(state.expires_at.timestamp() * 1000))
        endpoint.send_frame(endpoint.protocol.connected(headers, session=endpoint.connection_id))
        endpoint.gate.connected(endpoint)
        endpoint.heartbeats.start(endpoint.protocol.heartbeat)
        endpoint.binding.start(state)

    async def _bind(self, hub: Hub) -> bool:
        """Bind the connection to its session's (and user's) groups; False when it closed meanwhile."""
        endpoint = self.endpoint
        endpoint.binding_in_progress = True
        try:
            await hub.bind(endpoint)
        except BaseException:
            endpoint.binding_in_progress = False
            hub.unbind(endpoint)
            raise
        endpoint.binding_in_progress = False
        if endpoint.closing:  # closed while joining: its unregistering left the binding to us
            hub.unbind(endpoint)
            return False
        return True

    def _csrf_ok(self, headers: dict[str, str]) -> bool:
        from django.conf import settings

        token = headers.get("X-CSRFToken") or headers.get("X-CSRF-TOKEN")
        return token_matches_cookie(token, self.endpoint.peer.cookies.get(settings.CSRF_COOKIE_NAME))

    async def _subscribe(self, event: Subscribe) -> None:
        # The subscription this frame created, not the protocol's current one under its id: later frames of the
        # same message may already have ended it and reused the id for another destination.
        endpoint, subscription = self.endpoint, cast(Subscription, event.subscription)  # set by the protocol
        destination = subscription.destination
        kind = self._kind(destination, event.receipt)
        if kind is None:
            return
        if kind is Kind.APP:
            served = " or ".join((*self.config.broker_prefixes, self.config.user_prefix))
            self._refuse(
                "cannot subscribe to " + _short(destination),
                f"application destinations receive SENDs; subscribe to a {served} destination",
                event.receipt,
            )
            return
        if not await authorize(endpoint.user, "subscribe", destination, self.config):
            self._refuse("access denied to " + _short(destination), "subscription refused", event.receipt)
            return
        if endpoint.closing:
            return
        if kind is Kind.TOPIC:
            # Listed in topic_subs only once joined: a close meanwhile leaves this one to us, and a failed or
            # cancelled join takes its own registration back.
            await cast(Hub, endpoint.hub).add_subscription(endpoint, subscription)  # set by CONNECT
            if endpoint.closing:
                endpoint.hub.remove_subscription(endpoint, subscription)
            else:
                endpoint.topic_subs.append(subscription)
        else:
            endpoint.user_subs.setdefault(destination, []).append(subscription)
            if destination == self.config.session_destination:
                endpoint.binding.page_subscribed()

    def _unsubscribe(self, event: Unsubscribe) -> None:
        endpoint, subscription = self.endpoint, cast(Subscription, event.subscription)  # set by the protocol
        destination = subscription.destination
        for subs in (endpoint.topic_subs, endpoint.user_subs.get(destination, [])):
            for index, sub in enumerate(subs):
                if sub is subscription:
                    del subs[index]
                    break
        if not endpoint.user_subs.get(destination, True):
            del endpoint.user_subs[destination]
        if endpoint.hub is not None:
            endpoint.hub.remove_subscription(endpoint, subscription)

    async def _send(self, event: Send, receipt: str | None, authorized: bool = False) -> None:
        """Check a SEND when it arrives, and carry it out unless a transaction holds it until COMMIT.

        ``receipt`` goes on a refusal's ERROR: the SEND's own, or the COMMIT's for a SEND carried out at COMMIT.
        """
        endpoint, destination = self.endpoint, event.destination
        kind = self._kind(destination, receipt)
        if kind is None:
            return
        if kind is Kind.USER or (kind is Kind.TOPIC and not self.config.client_send_to_topics):
            self._refuse(
                "SEND not allowed to " + _short(destination),
                f"clients may SEND to {self.config.app_prefix} destinations"
                + ("" if kind is Kind.USER else " (STOMP_PUSH['CLIENT_SEND_TO_TOPICS'] allows the broker prefixes)"),
                receipt,
            )
            return
        if not authorized and not await authorize(endpoint.user, "send", destination, self.config):
            self._refuse("access denied to " + _short(destination), "SEND refused", receipt)
            return
        found = handlers.resolve(destination) if kind is Kind.APP else None
        if kind is Kind.APP and found is None:
            self._refuse("no handler for " + _short(destination), "nothing handles it", receipt)
            return
        if endpoint.closing or (event.transaction is not None and not authorized):
            return  # held: carried out at COMMIT
        if found is None:  # a broker destination (/topic/, /queue/, ...)
            headers = {k: v for k, v in event.headers.items() if k not in RESERVED_HEADERS}
            sent = start_push(destination, _body_of(event), headers, content_type=event.headers.get("content-type"))
            if sent is None:
                return
            if receipt is not None or not pipelines(self.config.channel_layer):
                await sent  # a RECEIPT says the layer took it; the core layer keeps order only when awaited
                return
            await self._pipelined(sent)
            return
        handler, params = found
        await handler.call(handlers.Message(endpoint, event, params))

    async def _pipelined(self, sent: Awaitable[None]) -> None:
        """Let a SEND's publication go on while the next frames are read (the layer keeps their order), up to
        :data:`MAX_UNCONFIRMED_SENDS` of them; a failed one closes the connection with 1011, as an awaited one
        would have."""
        future = cast("asyncio.Future[None]", sent)  # what the pipelining layers return
        unconfirmed = self._unconfirmed
        unconfirmed.append(future)
        future.add_done_callback(self._send_done)
        while unconfirmed and unconfirmed[0].done():
            unconfirmed.popleft()
        if len(unconfirmed) > MAX_UNCONFIRMED_SENDS:
            await asyncio.wait([unconfirmed.popleft()])

    def _send_done(self, sent: asyncio.Future[None]) -> None:
        if sent.cancelled() or sent.exception() is None or self.endpoint.closing:
            return
        exc = sent.exception()
        logger.error(
            "django-stomp-push: the channel layer failed to take a client's SEND: %s: %s", type(exc).__name__, exc
        )
        self.endpoint.close(
            CLOSE_SERVER_ERROR, "internal server error", "the server failed to pass a SEND on to its subscribers"
        )

    async def _commit(self, event: Commit) -> None:
        """Carry out the transaction's SENDs, in order; each was checked and authorized when it arrived."""
        for held in event.events:
            if self.endpoint.closing:
                return
            if isinstance(held, Send):
                await self._send(held, event.receipt, authorized=True)

    def _kind(self, destination: str, receipt: str | None) -> Kind | None:
        try:
            return classify(destination, self.config)
        except DestinationError as exc:
            self._refuse("unknown destination " + _short(destination), str(exc), receipt)
            return None

    def _refuse(self, message: str, detail: str, receipt: str | None) -> None:
        """ERROR naming what was refused (with the frame's receipt-id, if it asked for a receipt), close 1008."""
        self.endpoint.close(CLOSE_POLICY_VIOLATION, message, detail, receipt)


def _short(destination: str) -> str:
    return destination if len(destination) <= 120 else destination[:117] + "..."


def _body_of(event: Send) -> str | bytes:
    try:
        return event.body.decode("utf-8")
    except UnicodeDecodeError:
        return event.body
