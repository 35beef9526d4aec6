"""The minimal STOMP both baseline servers speak: just enough for the benchmark's load generator.

CONNECT/STOMP -> CONNECTED (with heart-beat negotiation), SUBSCRIBE/UNSUBSCRIBE (with receipts), SEND to a
destination -> MESSAGE to each subscriber, DISCONNECT. No escaping, no transactions, no acks, no limits:
a baseline, not a server to deploy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: (server sends every ms, server wants client data every ms): the same offer as django-stomp-push's default.
SERVER_HEARTBEAT = (10_000, 10_000)

Frame = tuple[str, dict[str, str], str]


def parse(data: str) -> Iterator[Frame]:
    """The frames in one WebSocket message; heart-beat EOLs between frames are skipped."""
    for chunk in data.split("\0"):
        chunk = chunk.lstrip("\r\n")
        if not chunk:
            continue
        head, _, body = chunk.partition("\n\n")
        command, *lines = head.split("\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.rstrip("\r").partition(":")
            headers.setdefault(name, value)  # STOMP 1.2: the first occurrence of a repeated header wins
        yield command.rstrip("\r"), headers, body


def render(command: str, headers: dict[str, str], body: str = "") -> str:
    lines = "".join(f"{name}:{value}\n" for name, value in headers.items())
    return f"{command}\n{lines}\n{body}\0"


def connected(connect_headers: dict[str, str]) -> tuple[str, float | None]:
    """The CONNECTED frame answering a CONNECT, and how often (seconds) the server must send heart-beats."""
    _client_sends, client_wants = (int(x or 0) for x in connect_headers.get("heart-beat", "0,0").split(","))
    server_sends, server_wants = SERVER_HEARTBEAT
    send_every = max(server_sends, client_wants) / 1000 if server_sends and client_wants else None
    frame = render("CONNECTED", {"version": "1.2", "heart-beat": f"{server_sends},{server_wants}", "server": "bench"})
    return frame, send_every


def message(destination: str, subscription: str, message_id: str, body: str) -> str:
    return render(
        "MESSAGE",
        {
            "destination": destination,
            "message-id": message_id,
            "subscription": subscription,
            "content-type": "text/plain",
            "content-length": str(len(body.encode())),
        },
        body,
    )


def receipt(headers: dict[str, str]) -> str | None:
    """A RECEIPT frame when the client asked for one."""
    receipt_id = headers.get("receipt")
    return render("RECEIPT", {"receipt-id": receipt_id}) if receipt_id is not None else None


def group_name(destination: str) -> str:
    """A channel-layer group name for a destination (ASCII letters, digits, '-', '_', '.'; < 100 characters)."""
    return "dest." + re.sub(r"[^A-Za-z0-9_.-]", "_", destination)[:90]
