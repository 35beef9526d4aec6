"""The server side of one STOMP connection, as a plain object (sans-IO).

``receive_data(bytes)`` parses what the client sent, validates it against the connection's state and returns
:class:`Event` objects for the application to carry out; methods like :meth:`ServerConnection.connected`,
:meth:`ServerConnection.receipt` and :meth:`ServerConnection.error` return the bytes to send back. Nothing here
knows about sockets, asyncio or Django.

Errors are raised as :class:`~.errors.StompError`; the caller answers with :meth:`ServerConnection.error` and
closes. Transactions: a SEND/ACK/NACK inside a transaction is returned when it arrives (so the application can
check its destination and answer its receipt then) and held; :class:`Commit` carries the held events, in order,
for the application to carry out (ABORT drops them).

Every event carries its own data (a :class:`Subscribe` its new :class:`Subscription`, an :class:`Unsubscribe` the
one it ended): an application that carries events out later than they were parsed, in order, never needs to look
at the connection's current state, which may already be several frames ahead.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field

from .errors import LimitExceeded, ProtocolViolation, StompError, UnsupportedVersion
from .frames import CLIENT_COMMANDS, V10, V11, V12, VERSIONS, Frame, encode, encode_headers
from .parser import FrameParser, Limits

ACK_MODES = ("auto", "client", "client-individual")


class State(enum.Enum):
    AWAITING_CONNECT = "awaiting CONNECT"
    CONNECTED = "connected"
    CLOSED = "closed"


# -- events ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """Something the client asked for. ``receipt`` is set when the frame carried a ``receipt`` header."""

    receipt: str | None = field(default=None, kw_only=True)


@dataclass(slots=True)
class Connect(Event):
    """A valid CONNECT/STOMP frame; the version and heart-beats are already negotiated."""

    version: str
    heartbeat: tuple[int, int]
    """(server sends every ms, server expects client data every ms); 0 means none."""
    host: str | None
    login: str | None
    passcode: str | None
    headers: dict[str, str]


@dataclass(slots=True)
class Subscribe(Event):
    id: str
    destination: str
    ack: str
    headers: dict[str, str]
    #: The subscription this frame created (the connection may have ended it by the time the event is carried out).
    subscription: Subscription | None = field(default=None, compare=False, kw_only=True)


@dataclass(slots=True)
class Unsubscribe(Event):
    id: str
    destination: str
    #: The subscription this frame ended: the same object its :class:`Subscribe` event carried.
    subscription: Subscription | None = field(default=None, compare=False, kw_only=True)


@dataclass(slots=True)
class Send(Event):
    destination: str
    headers: dict[str, str]
    body: bytes
    transaction: str | None = None


@dataclass(slots=True)
class Ack(Event):
    message_id: str
    subscription: str
    transaction: str | None = None


@dataclass(slots=True)
class Nack(Ack):
    pass


@dataclass(slots=True)
class Begin(Event):
    transaction: str


@dataclass(slots=True)
class Commit(Event):
    """The transaction's held SEND/ACK/NACK events, in the order they arrived, to be carried out now."""

    transaction: str
    events: list[Event] = field(default_factory=list, kw_only=True)


@dataclass(slots=True)
class Abort(Event):
    transaction: str


@dataclass(slots=True)
class Disconnect(Event):
    pass


@dataclass(slots=True)
class Subscription:
    """An active subscription of this connection."""

    id: str
    destination: str
    ack: str = "auto"
    #: "MESSAGE\nsubscription:<id>\nmessage-id:", escaped for the connection's version; rendered once.
    head_prefix: str = ""


def error_headers(exc: StompError) -> dict[str, str]:
    """Headers an ERROR frame for ``exc`` carries besides ``message``: the spec wants the supported versions
    in a ``version`` header when none is shared."""
    if isinstance(exc, UnsupportedVersion):
        return {"version": ",".join(exc.supported)}
    return {}


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
        self._transactions: dict[str, list[Event]] = {}
        # transaction -> the (message-id, subscription id) deliveries its ACK/NACKs settled, restored on ABORT
        self._settled_in: dict[str, list[tuple[str, str]]] = {}
        # message-id -> subscription id, for deliveries that await an ACK/NACK (client ack modes only)
        self._pending: OrderedDict[str, str] = OrderedDict()
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
            while self.state is not State.CLOSED:
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
            held = self._transaction(transaction)
            if len(held) >= self.limits.max_transaction_frames:
                raise LimitExceeded(
                    "too many frames in transaction",
                    f"transaction {transaction!r} holds {len(held)} frames; the limit is "
                    f"{self.limits.max_transaction_frames}",
                )
            held.append(event)
        elif command == "COMMIT":
            event.events = self._transactions.pop(event.transaction)
        events.append(event)

    def _connect(self, frame: Frame) -> Connect:
        headers = frame.headers
        offered = headers.get("accept-version")
        if offered is None:
            accepted = (V10,)
        else:
            accepted = tuple(v.strip() for v in offered.split(","))
        common = [v for v in self.versions if v in accepted]
        if not common:
            raise UnsupportedVersion(V10 if offered is None else offered, self.versions)
        version = common[-1]
        if version != V10 and "host" not in headers and frame.command == "STOMP":
            raise ProtocolViolation("missing header", "STOMP frame requires a 'host' header")
        self.version = version
        self._parser.version = version
        self.heartbeat = self._negotiate_heartbeat(headers.get("heart-beat", "0,0")) if version != V10 else (0, 0)
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

    def _negotiate_heartbeat(self, value: str) -> tuple[int, int]:
        parts = [p.strip() for p in value.split(",")]
        # ASCII digits only (str.isdigit accepts "²"), and short enough for int() and for any sane interval.
        if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) <= 10 for p in parts):
            raise ProtocolViolation("invalid heart-beat header", f"{value[:40]!r} is not 'cx,cy'")
        cx, cy = (int(p) for p in parts)
        sx, sy = self.heartbeat_offer
        # Spec: server->client every max(sx, cy) if neither is 0; client->server every max(cx, sy).
        send_every = 0 if sx == 0 or cy == 0 else max(sx, cy)
        expect_every = 0 if cx == 0 or sy == 0 else max(cx, sy)
        return (send_every, expect_every)

    def _required(self, frame: Frame, *names: str) -> list[str]:
        values = []
        for name in names:
            value = frame.headers.get(name)
            if value is None:
                raise ProtocolViolation("missing header", f"{frame.command} frame requires a {name!r} header")
            values.append(value)
        return values

    def _on_send(self, frame: Frame, receipt: str | None) -> Send:
        (destination,) = self._required(frame, "destination")
        transaction = frame.headers.get("transaction")
        if transaction is not None:
            self._transaction(transaction)
        return Send(destination, frame.headers, frame.body, transaction, receipt=receipt)

    def _on_subscribe(self, frame: Frame, receipt: str | None) -> Subscribe:
        if self.version == V10:
            (destination,) = self._required(frame, "destination")
            sub_id = frame.headers.get("id", destination)
        else:
            destination, sub_id = self._required(frame, "destination", "id")
        ack = frame.headers.get("ack", "auto")
        if ack not in ACK_MODES:
            raise ProtocolViolation("invalid ack mode", f"ack:{ack!r}; expected one of {', '.join(ACK_MODES)}")
        if sub_id in self.subscriptions:
            raise ProtocolViolation("duplicate subscription id", f"subscription id {sub_id!r} is already in use")
        if len(self.subscriptions) >= self.limits.max_subscriptions:
            raise LimitExceeded(
                "too many subscriptions", f"the limit is {self.limits.max_subscriptions} per connection"
            )
        prefix = encode_headers("MESSAGE", [("subscription", sub_id)], self.version)[:-1] + "message-id:"
        subscription = self.subscriptions[sub_id] = Subscription(sub_id, destination, ack, prefix)
        return Subscribe(sub_id, destination, ack, frame.headers, receipt=receipt, subscription=subscription)

    def _on_unsubscribe(self, frame: Frame, receipt: str | None) -> Unsubscribe:
        if self.version == V10:
            sub_id = frame.headers.get("id") or frame.headers.get("destination")
            if sub_id is None:
                raise ProtocolViolation("missing header", "UNSUBSCRIBE frame requires an 'id' or 'destination'")
        else:
            (sub_id,) = self._required(frame, "id")
        sub = self.subscriptions.pop(sub_id, None)
        if sub is None:
            raise ProtocolViolation("unknown subscription", f"no subscription with id {sub_id!r}")
        for message_id in [m for m, s in self._pending.items() if s == sub_id]:
            del self._pending[message_id]
        for name, settled in self._settled_in.items():  # an ABORT must not bring them back
            self._settled_in[name] = [(m, s) for m, s in settled if s != sub_id]
        return Unsubscribe(sub_id, sub.destination, receipt=receipt, subscription=sub)

    def _on_ack(self, frame: Frame, receipt: str | None, cls: type[Ack] = Ack) -> Ack:
        if self.version == V12:
            (message_id,) = self._required(frame, "id")
        else:
            (message_id,) = self._required(frame, "message-id")
        transaction = frame.headers.get("transaction")
        if transaction is not None:
            self._transaction(transaction)
        sub_id = self._pending.get(message_id)
        if sub_id is None:
            named = frame.headers.get("subscription")
            sub = self.subscriptions.get(named) if named else None
            if sub is not None and sub.ack == "auto":
                raise ProtocolViolation(
                    f"{frame.command} not expected",
                    f"subscription {sub.id!r} uses ack mode auto; messages need no {frame.command}",
                )
            raise ProtocolViolation(f"{frame.command} for unknown message", f"no unacknowledged message {message_id!r}")
        settled = self._settle(message_id, sub_id)
        if transaction is not None:
            self._settled_in[transaction].extend(settled)
        return cls(message_id, sub_id, transaction, receipt=receipt)

    def _on_nack(self, frame: Frame, receipt: str | None) -> Ack:
        if self.version == V10:
            raise ProtocolViolation("unknown command", "NACK is not part of STOMP 1.0")
        return self._on_ack(frame, receipt, Nack)

    def _settle(self, message_id: str, sub_id: str) -> list[tuple[str, str]]:
        """Stop awaiting an ACK/NACK for ``message_id``; returns the (message-id, subscription) pairs settled."""
        sub = self.subscriptions.get(sub_id)
        if sub is None or sub.ack != "client":
            del self._pending[message_id]
            return [(message_id, sub_id)]
        # Cumulative: settles this message and every earlier one of the same subscription.
        settled = []
        for earlier in list(self._pending):
            if self._pending[earlier] == sub_id:
                del self._pending[earlier]
                settled.append((earlier, sub_id))
            if earlier == message_id:
                return settled
        return settled

    def _transaction(self, name: str) -> list[Event]:
        held = self._transactions.get(name)
        if held is None:
            raise ProtocolViolation("unknown transaction", f"transaction {name!r} was not begun")
        return held

    def _on_begin(self, frame: Frame, receipt: str | None) -> Begin:
        (name,) = self._required(frame, "transaction")
        if name in self._transactions:
            raise ProtocolViolation("duplicate transaction", f"transaction {name!r} is already open")
        if len(self._transactions) >= self.limits.max_transactions:
            raise LimitExceeded("too many transactions", f"the limit is {self.limits.max_transactions} open at once")
        self._transactions[name] = []
        self._settled_in[name] = []
        return Begin(name, receipt=receipt)

    def _on_commit(self, frame: Frame, receipt: str | None) -> Commit:
        (name,) = self._required(frame, "transaction")
        self._transaction(name)
        del self._settled_in[name]
        return Commit(name, receipt=receipt)

    def _on_abort(self, frame: Frame, receipt: str | None) -> Abort:
        (name,) = self._required(frame, "transaction")
        self._transaction(name)
        del self._transactions[name]
        # Rolled back: its ACK/NACKs never happened. They go first, where 'client' (cumulative) mode needs them:
        # every delivery still pending on their subscription came after them.
        self._pending = OrderedDict([*self._settled_in.pop(name), *self._pending.items()])
        return Abort(name, receipt=receipt)

    def _on_disconnect(self, frame: Frame, receipt: str | None) -> Disconnect:
        self.state = State.CLOSED
        return Disconnect(receipt=receipt)

    # -- output --------------------------------------------------------------------------------------------

    def connected(self, headers: dict[str, str] | None = None, session: str | None = None) -> bytes:
        """The CONNECTED frame answering the client's CONNECT."""
        out = {"version": self.version, "server": self.server}
        if self.version != V10:
            out["heart-beat"] = f"{self.heartbeat_offer[0]},{self.heartbeat_offer[1]}"
        if session is not None:
            out["session"] = session
        if headers:
            out.update(headers)
        return encode(Frame("CONNECTED", out), self.version)

    def receipt(self, receipt_id: str) -> bytes:
        return encode(Frame("RECEIPT", {"receipt-id": receipt_id}), self.version)

    def error(
        self, message: str, detail: str = "", receipt_id: str | None = None, headers: dict[str, str] | None = None
    ) -> bytes:
        """An ERROR frame; the connection is closed from here on."""
        self.state = State.CLOSED
        out = {"message": message, "content-type": "text/plain"}
        if receipt_id is not None:
            out["receipt-id"] = receipt_id
        out.update(headers or {})
        return encode(Frame("ERROR", out, detail.encode()), self.version)

    def error_for(self, exc: StompError) -> bytes:
        return self.error(exc.message, exc.detail, exc.receipt_id, error_headers(exc))

    def message_head(self, subscription: Subscription, message_id: str) -> str:
        """The per-subscriber first lines of a MESSAGE frame (the rest is shared by every subscriber).

        Registers the delivery as awaiting an ACK when the subscription's ack mode asks for one.
        """
        if subscription.ack == "auto":
            return f"{subscription.head_prefix}{message_id}\n"
        if len(self._pending) >= self.limits.max_pending_acks:
            raise LimitExceeded("too many unacknowledged messages", f"the limit is {self.limits.max_pending_acks}")
        self._pending[message_id] = subscription.id
        if self.version == V12:
            return f"{subscription.head_prefix}{message_id}\nack:{message_id}\n"
        return f"{subscription.head_prefix}{message_id}\n"


__all__ = [
    "ACK_MODES",
    "V10",
    "V11",
    "V12",
    "Abort",
    "Ack",
    "Begin",
    "Commit",
    "Connect",
    "Disconnect",
    "Event",
    "Nack",
    "Send",
    "ServerConnection",
    "State",
    "Subscribe",
    "Subscription",
    "Unsubscribe",
]
