"""STOMP 1.0/1.1/1.2, sans-IO: frames, an incremental parser and server-side connection state.

No Django, no asyncio, no sockets: bytes in, events and bytes out. Usable on its own.
"""

from .connection import (
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
    ServerConnection,
    State,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from .errors import (
    FrameTooLarge,
    HeaderTooLong,
    LimitExceeded,
    MalformedFrame,
    ProtocolViolation,
    StompError,
    TooManyHeaders,
    UnsupportedVersion,
)
from .frames import HEARTBEAT, V10, V11, V12, VERSIONS, Frame, encode, escape, unescape
from .parser import FrameParser, Limits

__all__ = [
    "ACK_MODES",
    "HEARTBEAT",
    "V10",
    "V11",
    "V12",
    "VERSIONS",
    "Abort",
    "Ack",
    "Begin",
    "Commit",
    "Connect",
    "Disconnect",
    "Event",
    "Frame",
    "FrameParser",
    "FrameTooLarge",
    "HeaderTooLong",
    "LimitExceeded",
    "Limits",
    "MalformedFrame",
    "Nack",
    "ProtocolViolation",
    "Send",
    "ServerConnection",
    "State",
    "StompError",
    "Subscribe",
    "Subscription",
    "TooManyHeaders",
    "Unsubscribe",
    "UnsupportedVersion",
    "encode",
    "escape",
    "unescape",
]
