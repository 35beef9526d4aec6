"""What a CONNECT (or STOMP) frame settles: the protocol version and the heart-beat intervals."""

from __future__ import annotations

from .errors import ProtocolViolation, UnsupportedVersion
from .frames import V10, Frame


def negotiate_version(frame: Frame, versions: tuple[str, ...]) -> str:
    """The highest of ``versions`` (in ascending order) the client accepts; no ``accept-version`` means 1.0."""
    offered = frame.headers.get("accept-version")
    accepted = (V10,) if offered is None else tuple(v.strip() for v in offered.split(","))
    common = [v for v in versions if v in accepted]
    if not common:
        raise UnsupportedVersion(V10 if offered is None else offered, versions)
    version = common[-1]
    if version != V10 and "host" not in frame.headers and frame.command == "STOMP":
        raise ProtocolViolation("missing header", "STOMP frame requires a 'host' header")
    return version


def negotiate_heartbeat(value: str, offer: tuple[int, int]) -> tuple[int, int]:
    """(server sends every ms, client must send every ms) for the client's ``heart-beat`` header ``value`` and
    the server's ``offer`` (can send every ms, wants to receive every ms); 0 means none."""
    parts = [p.strip() for p in value.split(",")]
    # ASCII digits only (str.isdigit accepts "²"), and short enough for int() and for any sane interval.
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) <= 10 for p in parts):
        raise ProtocolViolation("invalid heart-beat header", f"{value[:40]!r} is not 'cx,cy'")
    cx, cy = (int(p) for p in parts)
    sx, sy = offer
    # Spec: server->client every max(sx, cy) if neither is 0; client->server every max(cx, sy).
    send_every = 0 if sx == 0 or cy == 0 else max(sx, cy)
    expect_every = 0 if cx == 0 or sy == 0 else max(cx, sy)
    return (send_every, expect_every)
