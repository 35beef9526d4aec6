"""The frames a server sends (CONNECTED, RECEIPT, ERROR and MESSAGE), rendered here and nowhere else.

:class:`~.connection.ServerConnection` calls these with its negotiated version; an application asks the connection,
not this module. A pushed MESSAGE is rendered in two parts: the lines every subscriber shares, once per push and
version (:class:`PushedMessage`), and each subscriber's own first lines (its pre-rendered
:func:`message_head_prefix`, then the message id and, for STOMP 1.2 client ack modes, the ``ack`` header).
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import StompError, UnsupportedVersion
from .frames import V10, V12, Frame, encode, header_lines


def connected_frame(
    version: str,
    server: str,
    heartbeat: tuple[int, int],
    headers: Mapping[str, str] | None = None,
    session: str | None = None,
) -> bytes:
    """CONNECTED for ``version``, offering ``heartbeat`` (send every ms, want every ms) from STOMP 1.1 on."""
    out = {"version": version, "server": server}
    if version != V10:
        out["heart-beat"] = f"{heartbeat[0]},{heartbeat[1]}"
    if session is not None:
        out["session"] = session
    if headers:
        out.update(headers)
    return encode(Frame("CONNECTED", out), version)


def receipt_frame(receipt_id: str, version: str) -> bytes:
    return encode(Frame("RECEIPT", {"receipt-id": receipt_id}), version)


def error_frame(
    message: str,
    detail: str,
    receipt_id: str | None,
    headers: Mapping[str, str] | None,
    version: str,
) -> bytes:
    """ERROR with ``message`` in its header and ``detail`` as its plain-text body."""
    out = {"message": message, "content-type": "text/plain"}
    if receipt_id is not None:
        out["receipt-id"] = receipt_id
    out.update(headers or {})
    return encode(Frame("ERROR", out, detail.encode()), version)


def error_headers(exc: StompError) -> dict[str, str]:
    """Headers an ERROR frame for ``exc`` carries besides ``message``: the spec wants the supported versions
    in a ``version`` header when none is shared."""
    if isinstance(exc, UnsupportedVersion):
        return {"version": ",".join(exc.supported)}
    return {}


def message_head_prefix(subscription_id: str, version: str) -> str:
    """The first lines of every MESSAGE to one subscription, up to the value of its ``message-id`` header."""
    return f"MESSAGE\n{header_lines([('subscription', subscription_id)], version, 'MESSAGE')}message-id:"


class PushedMessage:
    """One MESSAGE pushed to any number of subscribers, less what differs per subscriber.

    Its shared lines (``destination``, ``content-type``, ``content-length``, then ``headers``) and its body are
    rendered once per protocol version, on first use. A text body makes text frames (``str``, sent as a WebSocket
    text message without encoding), a binary body ``bytes``. Deliver it with
    :meth:`~.connection.ServerConnection.message`.
    """

    __slots__ = ("_tails", "body", "content_type", "destination", "headers")

    def __init__(
        self,
        destination: str,
        body: str | bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.destination = destination
        self.body = body
        self.content_type = content_type
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self._tails: dict[str, str | bytes] = {}

    def frame(self, head_prefix: str, message_id: str, version: str, awaits_ack: bool = False) -> str | bytes:
        """The whole frame for one subscriber: its ``head_prefix`` (see :func:`message_head_prefix`), the
        ``message-id``, an ``ack`` header when the message ``awaits_ack`` (STOMP 1.2 only), then the shared part."""
        tail = self._tails.get(version)
        if tail is None:
            tail = self._tails[version] = self._render(version)
        # One f-string per frame: the hot path of a push to many subscribers.
        if awaits_ack and version == V12:
            if isinstance(tail, str):
                return f"{head_prefix}{message_id}\nack:{message_id}\n{tail}"
            return f"{head_prefix}{message_id}\nack:{message_id}\n".encode() + tail
        if isinstance(tail, str):
            return f"{head_prefix}{message_id}\n{tail}"
        return f"{head_prefix}{message_id}\n".encode() + tail

    def _render(self, version: str) -> str | bytes:
        body = self.body
        length = len(body.encode()) if isinstance(body, str) else len(body)
        shared = [
            ("destination", self.destination),
            ("content-type", self.content_type),
            ("content-length", str(length)),
        ]
        lines = header_lines([*shared, *self.headers.items()], version, "MESSAGE") + "\n"
        return f"{lines}{body}\x00" if isinstance(body, str) else lines.encode() + body + b"\x00"
