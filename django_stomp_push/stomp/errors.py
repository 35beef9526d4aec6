"""Typed protocol errors.

Every error the protocol raises is a :class:`StompError`. Each one carries the short ``message`` that goes
into the ``message`` header of the ``ERROR`` frame, an optional longer ``detail`` for its body, and the
``receipt_id`` of the offending frame when it asked for a receipt. After any of them the connection is over:
the server sends the ERROR frame and closes.
"""

from __future__ import annotations


class StompError(Exception):
    """Base class: the peer did something the protocol forbids; answer with ERROR and close."""

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
    """A per-connection limit (subscriptions, open transactions, pending acks) was reached."""
