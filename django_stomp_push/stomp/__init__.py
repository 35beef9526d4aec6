"""STOMP 1.0/1.1/1.2, sans-IO: frames, an incremental parser and server-side connection state.

No Django, no asyncio, no sockets: bytes in, events and frames out. Standard library only, usable on its own.

Modules: :mod:`.frames` (a frame, header escaping), :mod:`.parser` (bytes to frames, within limits),
:mod:`.events` (what a client asks for), :mod:`.connection` (the protocol state of one connection) with its parts
:mod:`.negotiation` (version, heart-beats), :mod:`.transactions` and :mod:`.acks` (messages awaiting ACK/NACK),
:mod:`.server_frames` (every frame the server sends), :mod:`.errors` (each with its ERROR message and close code).
"""

from .connection import ServerConnection, State
from .errors import (
    FrameTooLarge,
    HeaderTooLong,
    LimitExceeded,
    MalformedFrame,
    ProtocolViolation,
    StompError,
    TooManyHeaders,
    TooManyUnacknowledged,
    UnsupportedVersion,
)
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
from .frames import HEARTBEAT, V10, V11, V12, VERSIONS, Frame, encode, escape, unescape
from .parser import FrameParser, Limits
from .server_frames import PushedMessage, error_headers

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
    "PushedMessage",
    "Send",
    "ServerConnection",
    "State",
    "StompError",
    "Subscribe",
    "Subscription",
    "TooManyHeaders",
    "TooManyUnacknowledged",
    "Unsubscribe",
    "UnsupportedVersion",
    "encode",
    "error_headers",
    "escape",
    "unescape",
]
