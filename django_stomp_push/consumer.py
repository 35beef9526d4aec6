"""StompConsumer: the glue between a WebSocket, the sans-IO protocol, the delivery hub and the Django session.

Three flows meet here:

1. client -> server: WebSocket messages are parsed by :class:`~.stomp.ServerConnection` as they arrive, and its
   events are carried out one after another, in frame order, by a task of their own (subscribe through the hub,
   call an ``/app/`` handler, push to a ``/topic/``, send a RECEIPT). Reading never waits for that work: liveness
   counts bytes when they arrive, and what waits to be carried out is bounded (``INBOUND_BUFFER_SIZE``: past it the
   server stops reading from that client, so TCP slows it down);
2. server -> client: the hub calls :meth:`StompConsumer.deliver`; frames go through a bounded outbound buffer
   drained by one writer task, so a slow client only ever fills its own buffer;
3. session end -> close: the hub calls :meth:`StompConsumer.end_session`, or the connection's own expiry timer
   finds the session gone; the client gets an ERROR frame saying why, then WebSocket close 1008.

Unlike a textbook Channels consumer this one has no per-connection channel-layer channel (the hub listens for
the whole process) and no ``aclose_old_connections()`` thread hop per message: every database access here goes
through ``database_sync_to_async``, which closes stale connections around its own call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from django.conf import settings

from . import daphne_compat, handlers
from .close_reasons import (
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_SERVER_ERROR,
    CLOSE_TOO_BIG,
    SESSION_ENDED,
    SESSION_EXPIRED,
    session_end_detail,
)
from .conf import Config, get_config
from .destinations import DestinationError, Kind, authorize, classify, session_hash, user_hash
from .hub import Hub, Rendered, get_hub
from .push import RESERVED_HEADERS, apush, encode_body
from .sessions import SessionState, extend_session, read_session
from .stomp import (
    Commit,
    Connect,
    Disconnect,
    Event,
    FrameTooLarge,
    Send,
    ServerConnection,
    StompError,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from .stomp.connection import error_headers
from .untrusted import for_log

logger = logging.getLogger("django_stomp_push")

SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")

_connection_ids = itertools.count(1)

#: WebSocket messages read in a row before the reader lets the event loop serve other connections.
_READS_PER_TURN = 64
#: Seconds a disconnected connection lets the event it is carrying out finish before cancelling it.
_SHUTDOWN_GRACE = 1.0


class StompConsumer(AsyncConsumer):
    """A STOMP 1.0/1.1/1.2 endpoint bound to the Django session of the WebSocket's cookie.

    Use it through :func:`django_stomp_push.routing.stomp_application` (or ``StompConsumer.as_asgi()`` inside
    ``AllowedHostsOriginValidator``, ``SessionMiddlewareStack`` and ``AuthMiddlewareStack``).
    """

    # -- set-up ------------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        self.channel_layer = None  # pushes and closes reach this connection through the process's hub
        self.config: Config = get_config()
        self.protocol = ServerConnection(self.config.limits, heartbeat=self.config.heartbeat)
        self.connection_id = f"{id(self):x}-{next(_connection_ids)}"
        self.version = self.protocol.version
        self.user: Any = None
        self.user_key: str | None = None
        self.session_key_hash: str | None = None
        self.session_state: SessionState | None = None
        self.hub: Hub | None = None
        self._user_subs: dict[str, list[Subscription]] = {}
        self._topic_subs: list[Subscription] = []
        self._out: deque[dict[str, Any]] = deque()
        self._out_bytes = 0
        self._enqueued = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closing = False
        self._message_ids = itertools.count(1)
        self._loop = asyncio.get_running_loop()
        self._last_received = self._last_sent = self._loop.time()
        self._sending_since: float | None = None
        self._last_touch = float("-inf")
        self._notice_sent_for: Any = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._daphne = daphne_compat.DaphneTransport.behind(send)
        self._send_now: Any = None  # the daphne fast path, once the WebSocket is accepted
        self._writer = self._loop.create_task(self._write_loop())
        # Parsed events (or the protocol error that ended the input) waiting to be carried out, each with the bytes
        # of input it accounts for; the reader waits on _room while more than INBOUND_BUFFER_SIZE bytes wait.
        self._inbox: deque[tuple[Event | StompError, int]] = deque()
        self._inbox_bytes = 0
        self._inbox_waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._processor = self._loop.create_task(self._process_loop())
        # True while CONNECT joins the user's and session's groups: that CONNECT, not a close meanwhile, unbinds.
        self._binding = False
        try:
            reads = 0
            while True:
                if self._inbox_bytes > self.config.inbound_buffer_size and not self._closing:
                    await self._wait_for_room()
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    self.websocket_receive(message)
                    reads += 1
                    if not reads % _READS_PER_TURN:
                        await asyncio.sleep(0)  # a flood of small messages must not hold the loop
                elif kind == "websocket.connect":
                    await self.websocket_connect(message)
                elif kind == "websocket.disconnect":
                    break
        except StopConsumer:
            pass
        finally:
            await self._shutdown()

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Accept at once (a close before accept would reach the client as HTTP 403, without a reason)."""
        offered = self.scope.get("subprotocols") or ()
        chosen = next((p for p in SUBPROTOCOLS if p in offered), None)
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if chosen:
            accept["subprotocol"] = chosen
        self._enqueue(accept, 0)
        self._timer("connect", self.config.connect_timeout, self._connect_timed_out)

    def _connect_timed_out(self) -> None:
        if self.protocol.state.name == "AWAITING_CONNECT":
            self.close(
                CLOSE_POLICY_VIOLATION,
                "CONNECT timeout",
                f"no CONNECT frame within {self.config.connect_timeout:g} seconds of opening the WebSocket",
            )

    # -- client -> server ----------------------------------------------------------------------------------

    def websocket_receive(self, message: dict[str, Any]) -> None:
        """Parse what arrived and queue its events; never waits (the events are carried out by their own task)."""
        if self._closing:
            return
        data = message.get("bytes")
        if data is None:
            data = (message.get("text") or "").encode()
        self._last_received = self._loop.time()
        heartbeats = self.protocol.heartbeats_received
        events, error = self.protocol.receive_events(data)
        if not events and error is None:
            if self.protocol.heartbeats_received > heartbeats:
                self._activity(heartbeat=True)
            return
        inbox = self._inbox
        inbox.extend((event, 0) for event in events)
        if error is not None:
            inbox.append((error, 0))
        inbox[-1] = (inbox[-1][0], len(data))  # the last item of this message releases its bytes
        self._inbox_bytes += len(data)
        waiter = self._inbox_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait_for_room(self) -> None:
        """Stop reading from this client until half of its backlog is carried out (TCP then slows it down)."""
        self._room = self._loop.create_future()
        paused = self._daphne is not None and self._daphne.pause_reading()
        try:
            await self._room
        finally:
            self._room = None
            if paused:
                self._daphne.resume_reading()
            self._last_received = self._loop.time()  # the wait was the server's, not the client's silence

    def _make_room(self) -> None:
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    async def _process_loop(self) -> None:
        """Carry out queued events one at a time, in frame order, each on its own data."""
        inbox, loop = self._inbox, self._loop
        while not self._closing:
            while inbox and not self._closing:
                item, size = inbox.popleft()
                try:
                    if isinstance(item, StompError):
                        self._protocol_error(item)
                    else:
                        await self._carry_out(item)
                finally:
                    self._inbox_bytes -= size
                if self._inbox_bytes <= self.config.inbound_buffer_size // 2:
                    self._make_room()
                await asyncio.sleep(0)  # other connections' frames, pushes and heart-beats go between two of ours
            if self._closing:
                break
            self._inbox_waiter = loop.create_future()
            await self._inbox_waiter
            self._inbox_waiter = None
        inbox.clear()
        self._inbox_bytes = 0
        self._make_room()

    def _protocol_error(self, exc: StompError) -> None:
        code = CLOSE_TOO_BIG if isinstance(exc, FrameTooLarge) else CLOSE_PROTOCOL_ERROR
        self.close(code, exc.message, exc.detail, exc.receipt_id, error_headers(exc))

    async def _carry_out(self, event: Event) -> None:
        try:
            await self._handle(event)
        except Exception:
            logger.exception("django-stomp-push: error while handling %s", type(event).__name__)
            self.close(
                CLOSE_SERVER_ERROR, "internal server error", "the server failed to process a frame", event.receipt
            )
            return
        if event.receipt is not None and not self._closing:
            self._send_frame(self.protocol.receipt(event.receipt))
        if isinstance(event, Disconnect):
            self.close(CLOSE_NORMAL)

    async def _handle(self, event: Event) -> None:
        if isinstance(event, Connect):
            await self._on_connect(event)
        elif isinstance(event, Subscribe):
            self._activity()
            await self._on_subscribe(event)
        elif isinstance(event, Unsubscribe):
            self._activity()
            self._on_unsubscribe(event)
        elif isinstance(event, Send):
            self._activity()
            await self._on_send(event, event.receipt)
        elif isinstance(event, Commit):
            await self._on_commit(event)
        # ACK/NACK, BEGIN/ABORT and DISCONNECT need nothing more: the protocol did the bookkeeping
        # (push-only: nothing is redelivered), and receipts are sent by the caller.

    async def _on_connect(self, event: Connect) -> None:
        self._cancel_timer("connect")
        self.version = event.version
        if self.config.csrf_check and not self._csrf_ok(event.headers):
            self.close(CLOSE_POLICY_VIOLATION, "CSRF check failed", "CONNECT needs an X-CSRFToken header")
            return
        self.hub = await get_hub(self.config.channel_layer)
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None) if session is not None else None
        user = self.scope.get("user")
        self.user = user
        if session_key:
            self.session_key_hash = session_hash(session_key)
        if user is not None and getattr(user, "is_authenticated", False):
            self.user_key = user_hash(user)
        # Join the session's group before reading the session: a close broadcast meanwhile is not missed.
        self._binding = True
        try:
            await self.hub.bind(self)
        except BaseException:
            self._binding = False
            self.hub.unbind(self)
            raise
        self._binding = False
        if self._closing:  # closed while joining: _unregister left the binding to us
            self.hub.unbind(self)
            return
        state = await database_sync_to_async(read_session)(session_key) if session_key else None
        if self._closing:
            return
        if state is None:
            if not self.config.allow_anonymous:
                self.close(
                    CLOSE_POLICY_VIOLATION,
                    "no valid session",
                    "the WebSocket carried no Django session cookie, or its session has ended or expired; "
                    "sign in and reconnect",
                )
                return
            self.hub.unbind(self)
            self.session_key_hash = self.user_key = None
        self.session_state = state
        headers = {}
        if self.user_key is not None:
            headers["user-name"] = user.get_username()
        if state is not None and state.expires_at is not None:
            headers["session-expires"] = str(int(state.expires_at.timestamp() * 1000))
        self._send_frame(self.protocol.connected(headers, session=self.connection_id))
        self._start_heartbeats()
        self._arm_session_timer()

    def _csrf_ok(self, headers: dict[str, str]) -> bool:
        from django.middleware.csrf import InvalidTokenFormat, _check_token_format, _does_token_match

        token = headers.get("X-CSRFToken") or headers.get("X-CSRF-TOKEN")
        secret = (self.scope.get("cookies") or {}).get(settings.CSRF_COOKIE_NAME)
        if not token or not secret:
            return False
        try:
            _check_token_format(token)
            _check_token_format(secret)
            return _does_token_match(token, secret if len(secret) == 32 else _unmask(secret))
        except InvalidTokenFormat:
            return False

    async def _on_subscribe(self, event: Subscribe) -> None:
        # The subscription this frame created, not the protocol's current one under its id: later frames of the
        # same message may already have ended it and reused the id for another destination.
        subscription = event.subscription
        destination = subscription.destination
        kind = self._destination_kind(destination, event.receipt)
        if kind is None:
            return
        if kind is Kind.APP:
            self._refuse(
                "cannot subscribe to " + _short(destination),
                "application destinations receive SENDs; subscribe to a /topic/ or /user/ destination",
                event.receipt,
            )
            return
        if not await authorize(self.user, "subscribe", destination, self.config):
            self._refuse("access denied to " + _short(destination), "subscription refused", event.receipt)
            return
        if self._closing:
            return
        if kind is Kind.TOPIC:
            # Listed in _topic_subs only once joined: a close meanwhile leaves this one to us, and a failed or
            # cancelled join takes its own registration back.
            await self.hub.add_subscription(self, subscription)
            if self._closing:
                self.hub.remove_subscription(self, subscription)
            else:
                self._topic_subs.append(subscription)
        else:
            self._user_subs.setdefault(destination, []).append(subscription)
            if destination == self.config.session_destination:
                self.notify_session("status")
                self._arm_session_timer()  # sends "expiring" now if the notice window has begun

    def _on_unsubscribe(self, event: Unsubscribe) -> None:
        subscription = event.subscription
        destination = subscription.destination
        for subs in (self._topic_subs, self._user_subs.get(destination, [])):
            for index, sub in enumerate(subs):
                if sub is subscription:
                    del subs[index]
                    break
        if not self._user_subs.get(destination, True):
            del self._user_subs[destination]
        if self.hub is not None:
            self.hub.remove_subscription(self, subscription)

    async def _on_send(self, event: Send, receipt: str | None, authorized: bool = False) -> None:
        """Check a SEND when it arrives, and carry it out unless a transaction holds it until COMMIT.

        ``receipt`` goes on a refusal's ERROR: the SEND's own, or the COMMIT's for a SEND carried out at COMMIT.
        """
        destination = event.destination
        kind = self._destination_kind(destination, receipt)
        if kind is None:
            return
        if kind is Kind.USER or (kind is Kind.TOPIC and not self.config.client_send_to_topics):
            self._refuse(
                "SEND not allowed to " + _short(destination),
                "clients may SEND to /app/ destinations"
                + ("" if kind is Kind.USER else " (set STOMP_PUSH['CLIENT_SEND_TO_TOPICS'] to allow /topic/)"),
                receipt,
            )
            return
        if not authorized and not await authorize(self.user, "send", destination, self.config):
            self._refuse("access denied to " + _short(destination), "SEND refused", receipt)
            return
        found = handlers.resolve(destination) if kind is Kind.APP else None
        if kind is Kind.APP and found is None:
            self._refuse("no handler for " + _short(destination), "nothing handles it", receipt)
            return
        if self._closing or (event.transaction is not None and not authorized):
            return  # held: carried out at COMMIT
        if kind is Kind.TOPIC:
            await apush(
                destination,
                _body_of(event),
                headers=_forwardable(event.headers),
                content_type=event.headers.get("content-type"),
            )
            return
        handler, params = found
        await handler.call(handlers.Message(self, event, params))

    async def _on_commit(self, event: Commit) -> None:
        """Carry out the transaction's SENDs, in order; each was checked and authorized when it arrived."""
        for held in event.events:
            if self._closing:
                return
            if isinstance(held, Send):
                await self._on_send(held, event.receipt, authorized=True)

    def _destination_kind(self, destination: str, receipt: str | None) -> Kind | None:
        try:
            return classify(destination, self.config)
        except DestinationError as exc:
            self._refuse("unknown destination " + _short(destination), str(exc), receipt)
            return None

    def _refuse(self, message: str, detail: str, receipt: str | None) -> None:
        """ERROR naming what was refused (with the frame's receipt-id, if it asked for a receipt), close 1008."""
        self.close(CLOSE_POLICY_VIOLATION, message, detail, receipt)

    # -- server -> client ----------------------------------------------------------------------------------

    def deliver(self, subscription: Subscription, tail: str | bytes) -> None:
        """Queue one MESSAGE for ``subscription`` (called by the hub; never awaits)."""
        if self._closing:
            return
        try:
            head = self.protocol.message_head(subscription, str(next(self._message_ids)))
        except StompError as exc:
            self.close(CLOSE_POLICY_VIOLATION, exc.message, exc.detail)
            return
        if isinstance(tail, str):
            frame = head + tail
            self._enqueue({"type": "websocket.send", "text": frame}, len(frame))
        else:
            data = head.encode() + tail
            self._enqueue({"type": "websocket.send", "bytes": data}, len(data))

    def user_subscriptions(self, destination: str) -> Iterable[Subscription]:
        return self._user_subs.get(destination, ())

    def deliver_local(self, destination: str, body: Any, headers: dict[str, str] | None = None) -> int:
        """Send a MESSAGE to this connection's own subscriptions of ``destination``; returns how many."""
        subs = self._user_subs.get(destination, ())
        if not subs:
            return 0
        payload, content_type = encode_body(body)
        rendered = Rendered(destination, payload, content_type, headers or {})
        for sub in tuple(subs):
            self.deliver(sub, rendered.tail(self.version))
        return len(subs)

    def _send_frame(self, frame: bytes) -> None:
        self._enqueue({"type": "websocket.send", "text": frame.decode("utf-8", "replace")}, len(frame))

    def _enqueue(self, message: dict[str, Any], size: int) -> None:
        self._out_bytes += size
        queued = self._out_bytes
        self._enqueued += 1
        if self._daphne is not None and not self._enqueued & 7:
            # Every 8th message: enough to bound memory (8 frames past the limit at worst), cheap on the hot path.
            queued += self._daphne.backlog()
        if queued > self.config.outbound_buffer_size and queued > size and not self._closing:
            # Only what waits ahead of this message counts against the client: one message larger than the
            # buffer, to a client that has read everything before it, is sent (as Spring's sendBufferSizeLimit).
            self._slow_consumer(f"more than {self.config.outbound_buffer_size} bytes queued")
            return
        if self._send_now is not None and not self._out and self._sending_since is None:
            # Nothing queued ahead of it: hand it to daphne now (same bytes, same order, no task wake-up).
            try:
                sent = self._send_now(message)
            except Exception:  # never let one broken transport break a broadcast to the others
                logger.warning("django-stomp-push: send failed on %s", self.connection_id, exc_info=True)
                self._send_now = None
                sent = False
            if sent:
                self._out_bytes -= size
                self._last_sent = self._loop.time()
                return
        self._out.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _slow_consumer(self, why: str) -> None:
        if self.hub is not None:
            self.hub.stats["slow_consumers"] += 1
        logger.warning("django-stomp-push: closing slow consumer %s: %s", self.connection_id, for_log(why))
        self._out.clear()
        self._out_bytes = 0
        self.close(CLOSE_POLICY_VIOLATION, "slow consumer", f"the client is not reading: {why}")

    async def _write_loop(self) -> None:
        out, send, loop = self._out, self.base_send, self._loop
        while True:
            while out:
                message = out.popleft()
                self._sending_since = loop.time()
                try:
                    # On daphne, the same synchronous call as the fast path (and its frames, of any size).
                    now = self._send_now
                    if now is None or message["type"] != "websocket.send" or not now(message):
                        await send(message)
                except Exception:  # the transport is gone: nothing more can be written
                    logger.debug("django-stomp-push: send failed on %s", self.connection_id, exc_info=True)
                    out.clear()
                    return
                finally:
                    self._sending_since = None
                size = len(message.get("text") or message.get("bytes") or "")
                self._out_bytes -= size
                self._last_sent = loop.time()
                if message["type"] == "websocket.close":
                    out.clear()
                    return
                if message["type"] == "websocket.accept" and self._daphne is not None:
                    self._daphne.write_through()
                    self._send_now = self._daphne.send_now
            self._waiter = loop.create_future()
            await self._waiter
            self._waiter = None

    # -- closing --------------------------------------------------------------------------------------------

    def close(
        self,
        code: int,
        message: str | None = None,
        detail: str = "",
        receipt_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send an ERROR frame (when ``message`` is given), then close the WebSocket with ``code``."""
        if self._closing:
            return
        self._closing = True
        self._unregister()
        if message is not None:
            error = self.protocol.error(message, detail, receipt_id, headers)
            self._out.append({"type": "websocket.send", "text": error.decode("utf-8", "replace")})
            logger.info("django-stomp-push: closing %s with %d: %s", self.connection_id, code, for_log(message))
        close: dict[str, Any] = {"type": "websocket.close", "code": code}
        if message:
            close["reason"] = message[:120]
        self._out.append(close)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def session_key(self) -> str | None:
        """The key of the bound Django session (kept in this process only; the hub checks it after a sweep)."""
        return self.session_state.key if self.session_state is not None else None

    def end_session(self, reason: str) -> None:
        """The bound Django session ended: ERROR saying ``reason``, then close 1008 (called by the hub)."""
        self.close(CLOSE_POLICY_VIOLATION, reason, session_end_detail(reason))

    def _unregister(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        hub = self.hub
        if hub is not None:
            for sub in self._topic_subs:
                hub.remove_subscription(self, sub)
            self._topic_subs.clear()
            if not self._binding:  # else the CONNECT in progress unbinds once its joins are done
                hub.unbind(self)

    async def _shutdown(self) -> None:
        self._closing = True
        self._unregister()
        self._out.clear()
        waiter = self._inbox_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        # The event being carried out may be joining a channel-layer group: let it finish and account for its own
        # registration (a cancelled join gives its count back by itself), within a bound.
        await asyncio.wait([self._processor], timeout=_SHUTDOWN_GRACE)
        for task in (self._processor, self._writer, *self._tasks):
            task.cancel()
        await asyncio.gather(self._processor, self._writer, *self._tasks, return_exceptions=True)

    # -- timers: heart-beats, session expiry, activity ------------------------------------------------------

    def _timer(self, name: str, delay: float, callback: Any) -> None:
        self._cancel_timer(name)
        self._timers[name] = self._loop.call_later(delay, callback)

    def _cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # The session store failed (database down, cache unreachable...): keep the connection, log, retry later.
        logger.warning(
            "django-stomp-push: session check failed on %s; retrying in %gs",
            self.connection_id,
            self.config.revalidate_interval,
            exc_info=task.exception(),
        )
        if not self._closing:
            self._timer("session", self.config.revalidate_interval, self._session_timer_fired)

    def _start_heartbeats(self) -> None:
        send_every, expect_every = self.protocol.heartbeat
        if send_every:
            self._timer("hb-send", send_every / 1000, self._heartbeat_send)
        if expect_every:
            self._timer("hb-check", expect_every * self.config.heartbeat_grace / 1000, self._heartbeat_check)

    def check_send(self, now: float) -> None:
        """Close the client if one send has been stuck longer than SEND_TIMEOUT (called by the hub's watchdog)."""
        since = self._sending_since
        if since is not None and now - since > self.config.send_timeout and not self._closing:
            self._slow_consumer(f"one send has taken more than {self.config.send_timeout:g} seconds")

    def _heartbeat_send(self) -> None:
        interval = self.protocol.heartbeat[0] / 1000
        now = self._loop.time()
        if now - self._last_sent >= interval * 0.9 and not self._out:
            self._enqueue({"type": "websocket.send", "text": "\n"}, 1)
        self._timer("hb-send", interval, self._heartbeat_send)

    def _heartbeat_check(self, confirming: bool = False) -> None:
        expect = self.protocol.heartbeat[1] / 1000
        allowed = expect * self.config.heartbeat_grace
        silent = self._loop.time() - self._last_received
        if silent > allowed and self._room is None:
            if confirming:
                self.close(
                    CLOSE_POLICY_VIOLATION,
                    "heart-beat timeout",
                    f"no data from the client for {silent:.1f}s; heart-beats were negotiated every {expect:g}s "
                    f"(closing after {allowed:g}s)",
                )
                return
            # Look once more after the event loop has served its sockets: when the loop was busy (a storm), the
            # client's bytes may have reached the server and wait to be read, and the silence is ours.
            self._timer("hb-check", min(0.25, allowed / 4), lambda: self._heartbeat_check(confirming=True))
            return
        self._timer("hb-check", max(0.01, allowed - silent), self._heartbeat_check)

    def _arm_session_timer(self) -> None:
        state = self.session_state
        if state is None or self._closing:
            return
        delay = self.config.revalidate_interval
        if state.expires_at is not None:
            left = state.expires_at.timestamp() - time.time()
            delay = min(delay, max(0.0, left) + 0.05)
            notice = self.config.expiry_notice
            if notice is not None and self._notice_sent_for != state.expires_at:
                if left > notice:
                    delay = min(delay, left - notice)
                elif self.notify_session("expiring"):  # else: sent when the page subscribes
                    self._notice_sent_for = state.expires_at
        self._timer("session", delay, self._session_timer_fired)

    def _session_timer_fired(self) -> None:
        state = self.session_state
        notice = self.config.expiry_notice
        if state is not None and state.expires_at is not None and notice is not None:
            left = state.expires_at.timestamp() - time.time()
            if left > 0.05 and self._notice_sent_for != state.expires_at and left <= notice + 0.05:
                self._arm_session_timer()  # sends the notice
                return
        self._spawn(self.revalidate())

    async def revalidate(self) -> None:
        """Re-read the bound session: gone or expired -> close 1008; still there -> re-arm the expiry timer."""
        old = self.session_state
        if old is None or self._closing:
            return
        state = await database_sync_to_async(read_session)(old.key)
        if self._closing:
            return
        if state is None:
            expired = old.expires_at is not None and old.expires_at.timestamp() <= time.time()
            self.end_session(SESSION_EXPIRED if expired else SESSION_ENDED)
            return
        self.session_state = state
        if state.expires_at != old.expires_at:
            self.notify_session("status")
        self._arm_session_timer()

    def _activity(self, heartbeat: bool = False) -> None:
        policy = self.config.activity
        state = self.session_state
        if policy == "none" or state is None or state.max_age is None:
            return
        if heartbeat and policy != "frames+heartbeats":
            return
        now = self._loop.time()
        if now - self._last_touch < self.config.touch_interval:
            return
        self._last_touch = now
        self._spawn(self._touch(state))

    async def _touch(self, state: SessionState) -> None:
        expires_at = await database_sync_to_async(extend_session)(state)
        if self._closing:
            return
        if expires_at is None:
            await self.revalidate()  # gone, expired or not extendable: let the store decide
            return
        self.session_state = dataclasses.replace(state, expires_at=expires_at)
        self.notify_session("status")
        self._arm_session_timer()

    def notify_session(self, event: str) -> int:
        """Tell this connection's subscription(s) of the session destination when its session expires.

        Returns how many subscriptions got the notice (0 when the client has not subscribed to it).
        """
        state = self.session_state
        if state is None or state.expires_at is None:
            return 0
        left = max(0, int(state.expires_at.timestamp() - time.time()))
        body = {"event": event, "expires_at": state.expires_at.isoformat(), "seconds_left": left}
        return self.deliver_local(self.config.session_destination, body)


def _unmask(token: str) -> str:
    from django.middleware.csrf import _unmask_cipher_token

    return _unmask_cipher_token(token)


def _short(destination: str) -> str:
    return destination if len(destination) <= 120 else destination[:117] + "..."


def _body_of(event: Send) -> str | bytes:
    try:
        return event.body.decode("utf-8")
    except UnicodeDecodeError:
        return event.body


def _forwardable(headers: dict[str, str]) -> dict[str, str]:
    """A client SEND's own headers, minus those the server sets on each MESSAGE."""
    return {k: v for k, v in headers.items() if k not in RESERVED_HEADERS}


__all__ = ["SUBPROTOCOLS", "StompConsumer"]
