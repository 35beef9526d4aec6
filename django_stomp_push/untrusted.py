"""Client-supplied text on its way into a log line.

A destination, a header or a subscription id comes from whoever opened the WebSocket. Written to a log as it is,
an escaped newline in a STOMP 1.2 header (``\\n``) becomes a line of its own that reads like the server's, and a
megabyte-long value floods the log. :func:`for_log` shows every control character as an escape and caps the length.
"""

from __future__ import annotations

#: Characters kept from one client-supplied value in a log line.
LOG_LIMIT = 200


def for_log(value: str, limit: int = LOG_LIMIT) -> str:
    """``value`` fit for one log line: control and non-printable characters escaped, at most ``limit`` characters
    (an ellipsis says it was cut)."""
    if value.isprintable() and len(value) <= limit:
        return value
    shown = value.encode("unicode_escape").decode("ascii") if not value.isprintable() else value
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
