"""Heart-beats both ways, as negotiated at CONNECT.

The server writes an end-of-line when it has written nothing for (about) its interval. It closes a client that
sent nothing for ``grace`` times the client's interval, counting input when it arrives (not when it is carried
out), never while the server itself has stopped reading from the client, and only after looking a second time once
the event loop has served its sockets: when the loop was busy, the client's bytes may be waiting to be read.
"""

from __future__ import annotations

from collections.abc import Callable

from .inbound import Inbound
from .outbound import Outbound
from .timers import Timers

HEARTBEAT = "\n"


class Heartbeats:
    """``on_timeout(detail)`` is called once when the client has been silent too long."""

    def __init__(
        self,
        timers: Timers,
        inbound: Inbound,
        outbound: Outbound,
        grace: float,
        on_timeout: Callable[[str], None],
    ) -> None:
        self.timers = timers
        self.inbound = inbound
        self.outbound = outbound
        self.grace = grace
        self.on_timeout = on_timeout
        self.send_every = self.expect_every = 0.0

    def start(self, negotiated: tuple[int, int]) -> None:
        """(server sends every ms, client must send every ms); 0 is none."""
        self.send_every, self.expect_every = negotiated[0] / 1000, negotiated[1] / 1000
        if self.send_every:
            self.timers.set("hb-send", self.send_every, self._send)
        if self.expect_every:
            self.timers.set("hb-check", self.expect_every * self.grace, self._check)

    def _send(self) -> None:
        if self.outbound.idle_for(self.timers.loop.time()) >= self.send_every * 0.9:
            self.outbound.frame(HEARTBEAT)
        self.timers.set("hb-send", self.send_every, self._send)

    def _check(self, confirming: bool = False) -> None:
        allowed = self.expect_every * self.grace
        silent = self.timers.loop.time() - self.inbound.last_received
        if silent <= allowed or self.inbound.paused:
            self.timers.set("hb-check", max(0.01, allowed - silent), self._check)
        elif not confirming:
            self.timers.set("hb-check", min(0.25, allowed / 4), lambda: self._check(confirming=True))
        else:
            self.on_timeout(
                f"no data from the client for {silent:.1f}s; heart-beats were negotiated every "
                f"{self.expect_every:g}s (closing after {allowed:g}s)"
            )
