"""The server side of one STOMP connection, as a plain object (sans-IO).

``receive_data(bytes)`` parses what the client sent, validates it against the connection's state and returns
:class:`~.events.Event` objects for the application to carry out; :meth:`ServerConnection.connected`,
:meth:`~ServerConnection.receipt`, :meth:`~ServerConnection.error` and :meth:`~ServerConnection.message` return
the frames to send. Nothing here knows about sockets, asyncio or Django.

Errors are raised as :class:`~.errors.StompError`; the caller answers with :meth:`ServerConnection.error_for`
and closes the WebSocket with the error's ``close_code``.

Transactions: a SEND/ACK/NACK inside a transaction is returned when it arrives (so the application can check its
destination and answer its receipt then) and held; :class:`~.events.Commit` carries the held events, in order,
for the application to carry out (ABORT drops them).

The events are defined in :mod:`.events`, the frames the server sends are rendered by :mod:`.server_frames`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from .acks import PendingAcks
from .errors import LimitExceeded, ProtocolViolation, StompError
from .events import (
    ACK_MODES,
    Abort,
    Ack,
    Begin,
    Commit,
    Connect,
    Disconnect,
    Event,
    Nack,
    Send,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from .frames import CLIENT_COMMANDS, V10, V12, VERSIONS, Frame
from .negotiation import negotiate_heartbeat, negotiate_version
from .parser import FrameParser, Limits
from .server_frames import (
    PushedMessage,
    connected_frame,
    error_frame,
    error_headers,
    message_head_prefix,
    receipt_frame,
)
from .transactions import OpenTransactions


def _required(frame: Frame, *names: str) -> list[str]:
    values = []
    for name in names:
        value = frame.headers.get(name)
        if value is None:
            raise ProtocolViolation("missing header", f"{frame.command} frame requires a {name!r} header")
        values.append(value)
    return values


class State(enum.Enum):
    AWAITING_CONNECT = "awaiting CONNECT"
    CONNECTED = "connected"
    CLOSED = "closed"


# -- the connection ----------------------------------------------------------------------------------------


class ServerConnection:
    """Protocol state of one client connection, from the server's side."""

    def __init__(
        self,
        limits: Limits | None = None,
        versions: tuple[str, ...] = VERSIONS,
        heartbeat: tuple[int, int] = (10_000, 10_000),
        server: str = "django-stomp-push",
    ) -> None:
        self.limits = limits or Limits()
        self.versions = tuple(v for v in VERSIONS if v in versions)
        #: (can send every ms, wants to receive every ms) as offered by the server.
        self.heartbeat_offer = heartbeat
        self.server = server
        self.state = State.AWAITING_CONNECT
        #: Negotiated version; until CONNECT the highest version the server speaks is assumed for parsing.
        self.version: str = self.versions[-1]
        #: Negotiated (server sends every ms, client must send every ms); (0, 0) is none.
        self.heartbeat: tuple[int, int] = (0, 0)
        self.subscriptions: dict[str, Subscription] = {}
        self._transactions = OpenTransactions(self.limits.max_transactions, self.limits.max_transaction_frames)
        self._acks = PendingAcks(self.limits.max_pending_acks)
        self._parser = FrameParser(self.limits, self.version)

    # -- input ---------------------------------------------------------------------------------------------

    @property
    def heartbeats_received(self) -> int:
        return self._parser.heartbeats

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data`` and return the events it completes. Raises :class:`StompError` on any violation."""
        events, error = self.receive_events(data)
        if error is not None:
            raise error
        return events

    def receive_events(self, data: bytes) -> tuple[list[Event], StompError | None]:
        """Parse ``data``: the events of every complete frame before the first violation, and that violation.

        After a violation the connection is closed: later data is ignored. The events before it are valid and
        happened first, so an application carries them out, in order, before it answers the violation.
        """
        events: list[Event] = []
        if self.state is State.CLOSED:
            return events, None
        self._parser.receive_data(data)
        frame: Frame | None = None
        try:
            # Frame by frame: a CONNECT changes how the frames after it in the same chunk are parsed.
            while self.state is not State.CLOSED:  # type: ignore[comparison-overlap]  # _handle() may close it
                frame = None  # a frame the parser refuses has no receipt to answer with
                frame = self._parser.next_frame()
                if frame is None:
                    break
                self._handle(frame, events)
        except StompError as exc:
            if exc.receipt_id is None and frame is not None:
                exc.receipt_id = frame.headers.get("receipt")
            self.state = State.CLOSED
            return events, exc
        return events, None

    def _handle(self, frame: Frame, events: list[Event]) -> None:
        command = frame.command
        if command not in CLIENT_COMMANDS:
            raise ProtocolViolation("unknown command", f"{command!r} is not a STOMP client command")
        if self.state is State.AWAITING_CONNECT:
            if command not in ("CONNECT", "STOMP"):
                raise ProtocolViolation("not connected", f"{command} frame received before CONNECT")
            events.append(self._connect(frame))
            return
        if command in ("CONNECT", "STOMP"):
            raise ProtocolViolation("already connected", f"a second {command} frame on one connection")
        receipt = frame.headers.get("receipt")
        event = getattr(self, "_on_" + command.lower())(frame, receipt)
        transaction = getattr(event, "transaction", None)
        if command in ("SEND", "ACK", "NACK") and transaction is not None:
            self._transactions.hold(transaction, event)
        events.append(event)

    def _connect(self, frame: Frame) -> Connect:
        headers = frame.headers
        self.version = self._parser.version = version = negotiate_version(frame, self.versions)
        if version != V10:
            self.heartbeat = negotiate_heartbeat(headers.get("heart-beat", "0,0"), self.heartbeat_offer)
        self.state = State.CONNECTED
        return Connect(
            version=version,
            heartbeat=self.heartbeat,
            host=headers.get("host"),
            login=headers.get("login"),
            passcode=headers.get("passcode"),
            headers=headers,
            receipt=headers.get("receipt"),
        )

    def _on_send(self, frame: Frame, receipt: str | None) -> Send:
        (destination,) = _required(frame, "destination")
        transaction = frame.headers.get("transaction")
        if transaction is not None:
            self._transactions.check(transaction)
        return Send(destination, frame.headers, frame.body, transaction, receipt=receipt)

    def _on_subscribe(self, frame: Frame, receipt: str | None) -> Subscribe:
        if self.version == V10:
            (destination,) = _required(frame, "destination")
            sub_id = frame.headers.get("id", destination)
        else:
            destination, sub_id = _required(frame, "destination", "id")
        ack = frame.headers.get("ack", "auto")
        if ack not in ACK_MODES:
            raise ProtocolViolation("invalid ack mode", f"ack:{ack!r}; expected one of {', '.join(ACK_MODES)}")
        if sub_id in self.subscriptions:
            raise ProtocolViolation("duplicate subscription id", f"subscription id {sub_id!r} is already in use")
        if len(self.subscriptions) >= self.limits.max_subscriptions:
            raise LimitExceeded(
                "too many subscriptions", f"the limit is {self.limits.max_subscriptions} per connection"
            )
        prefix = message_head_prefix(sub_id, self.version)
        subscription = self.subscriptions[sub_id] = Subscription(sub_id, destination, ack, prefix)
        return Subscribe(sub_id, destination, ack, frame.headers, receipt=receipt, subscription=subscription)

    def _on_unsubscribe(self, frame: Frame, receipt: str | None) -> Unsubscribe:
        if self.version == V10:
            sub_id = frame.headers.get("id") or frame.headers.get("destination")
            if sub_id is None:
                raise ProtocolViolation("missing header", "UNSUBSCRIBE frame requires an 'id' or 'destination'")
        else:
            (sub_id,) = _required(frame, "id")
        sub = self.subscriptions.pop(sub_id, None)
        if sub is None:
            raise ProtocolViolation("unknown subscription", f"no subscription with id {sub_id!r}")
        self._acks.forget(sub_id)
        return Unsubscribe(sub_id, sub.destination, receipt=receipt, subscription=sub)

    def _on_ack(self, frame: Frame, receipt: str | None, cls: type[Ack] = Ack) -> Ack:
        if self.version == V12:
            (message_id,) = _required(frame, "id")
        else:
            (message_id,) = _required(frame, "message-id")
        transaction = frame.headers.get("transaction")
        if transaction is not None:
            self._transactions.check(transaction)
        sub_id = self._acks.subscription_of(message_id)
        if sub_id is None:
            named = frame.headers.get("subscription")
            sub = self.subscriptions.get(named) if named else None
            if sub is not None and sub.ack == "auto":
                raise ProtocolViolation(
                    f"{frame.command} not expected",
                    f"subscription {sub.id!r} uses ack mode auto; messages need no {frame.command}",
                )
            raise ProtocolViolation(f"{frame.command} for unknown message", f"no unacknowledged message {message_id!r}")
        sub = self.subscriptions.get(sub_id)
        self._acks.settle(message_id, sub_id, sub is not None and sub.ack == "client", transaction)
        return cls(message_id, sub_id, transaction, receipt=receipt)

    def _on_nack(self, frame: Frame, receipt: str | None) -> Ack:
        if self.version == V10:
            raise ProtocolViolation("unknown command", "NACK is not part of STOMP 1.0")
        return self._on_ack(frame, receipt, Nack)

    def _on_begin(self, frame: Frame, receipt: str | None) -> Begin:
        (name,) = _required(frame, "transaction")
        self._transactions.begin(name)
        self._acks.begin(name)
        return Begin(name, receipt=receipt)

    def _on_commit(self, frame: Frame, receipt: str | None) -> Commit:
        (name,) = _required(frame, "transaction")
        held = self._transactions.end(name)
        self._acks.commit(name)
        return Commit(name, receipt=receipt, events=held)

    def _on_abort(self, frame: Frame, receipt: str | None) -> Abort:
        (name,) = _required(frame, "transaction")
        self._transactions.end(name)
        self._acks.abort(name)
        return Abort(name, receipt=receipt)

    def _on_disconnect(self, frame: Frame, receipt: str | None) -> Disconnect:
        self.state = State.CLOSED
        return Disconnect(receipt=receipt)

    # -- output --------------------------------------------------------------------------------------------

    def connected(self, headers: Mapping[str, str] | None = None, session: str | None = None) -> bytes:
        """The CONNECTED frame answering the client's CONNECT."""
        return connected_frame(self.version, self.server, self.heartbeat_offer, headers, session)

    def receipt(self, receipt_id: str) -> bytes:
        return receipt_frame(receipt_id, self.version)

    def error(
        self, message: str, detail: str = "", receipt_id: str | None = None, headers: Mapping[str, str] | None = None
    ) -> bytes:
        """An ERROR frame; the connection is closed from here on."""
        self.state = State.CLOSED
        return error_frame(message, detail, receipt_id, headers, self.version)

    def error_for(self, exc: StompError) -> bytes:
        """The ERROR frame answering ``exc``; close the WebSocket with ``exc.close_code`` after it."""
        return self.error(exc.message, exc.detail, exc.receipt_id, error_headers(exc))

    def message(self, subscription: Subscription, message: PushedMessage, message_id: str) -> str | bytes:
        """The MESSAGE frame delivering ``message`` to ``subscription``: ``str`` for a text body, else ``bytes``.

        ``message_id`` is unique on this connection and made by the server, so it is written as it is (no
        escaping). A client ack mode registers the delivery as awaiting ACK/NACK and, past
        ``limits.max_pending_acks``, raises :class:`~.errors.TooManyUnacknowledged`.
        """
        if subscription.ack == "auto":
            return message.frame(subscription.head_prefix, message_id, self.version)
        self._acks.expect(message_id, subscription.id)
        return message.frame(subscription.head_prefix, message_id, self.version, True)


__all__ = ["ServerConnection", "State"]
