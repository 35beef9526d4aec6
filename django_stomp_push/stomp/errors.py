"""Typed protocol errors.

Every error the protocol raises is a :class:`StompError`. Each one carries the short ``message`` that goes
into the ``message`` header of the ``ERROR`` frame, an optional longer ``detail`` for its body, and the
``receipt_id`` of the offending frame when it asked for a receipt. After any of them the connection is over:
the server sends the ERROR frame (:meth:`~.connection.ServerConnection.error_for`) and closes the WebSocket
with the error's ``close_code``.
"""

from __future__ import annotations

from typing import ClassVar

# WebSocket close codes (RFC 6455, section 7.4.1).
_PROTOCOL_ERROR = 1002
_POLICY_VIOLATION = 1008
_MESSAGE_TOO_BIG = 1009


class StompError(Exception):
    """Base class: the peer did something the protocol forbids; answer with ERROR and close."""

    #: The WebSocket close code to close with after the ERROR frame: 1002 (protocol error) unless a subclass
    #: says otherwise.
    close_code: ClassVar[int] = _PROTOCOL_ERROR

    def __init__(self, message: str, detail: str = "", receipt_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.receipt_id = receipt_id

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


class MalformedFrame(StompError):
    """The bytes are not a STOMP frame (bad header line, bad escape, invalid UTF-8, missing NUL...)."""


class FrameTooLarge(StompError):
    """A frame (headers and body) is larger than the configured ``max_frame_size``."""

    close_code = _MESSAGE_TOO_BIG


class TooManyHeaders(StompError):
    """A frame has more header lines than ``max_header_count``."""


class HeaderTooLong(StompError):
    """A header line (or the command line) is longer than ``max_header_length``."""


class ProtocolViolation(StompError):
    """A well-formed frame that is not allowed here: unknown command, missing header, wrong state..."""


class UnsupportedVersion(ProtocolViolation):
    """The client's ``accept-version`` names no version this server speaks."""

    def __init__(self, offered: str, supported: tuple[str, ...]) -> None:
        super().__init__(
            "unsupported STOMP version",
            f"client accepts {offered!r}; this server supports {','.join(supported)}",
        )
        self.supported = supported


class LimitExceeded(ProtocolViolation):
    """A per-connection limit (subscriptions, open transactions, frames in a transaction, pending acks) was
    reached."""


class TooManyUnacknowledged(LimitExceeded):
    """A delivery would leave more messages awaiting ACK/NACK than ``max_pending_acks``.

    Raised when the server delivers, not when the client sends: a server-side policy, hence close code 1008.
    """

    close_code = _POLICY_VIOLATION
