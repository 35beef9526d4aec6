"""What a client asks of the server, as events, and the subscriptions they create.

:class:`~.connection.ServerConnection` turns frames into these. Every event carries its own data (a
:class:`Subscribe` its new :class:`Subscription`, an :class:`Unsubscribe` the one it ended): an application that
carries events out later than they were parsed, in order, never needs to look at the connection's current state,
which may already be several frames ahead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACK_MODES = ("auto", "client", "client-individual")


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
    """An active subscription of a connection."""

    id: str
    destination: str
    ack: str = "auto"
    #: The first lines of every MESSAGE to this subscription, up to its message id, escaped for the connection's
    #: version: rendered once by the connection (see :func:`~.server_frames.message_head_prefix`).
    head_prefix: str = ""


__all__ = [
    "ACK_MODES",
    "Abort",
    "Ack",
    "Begin",
    "Commit",
    "Connect",
    "Disconnect",
    "Event",
    "Nack",
    "Send",
    "Subscribe",
    "Subscription",
    "Unsubscribe",
]
