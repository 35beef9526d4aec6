"""Something the process needs failing for a while (the channel layer, the machine's relay), and how often to say so."""

from __future__ import annotations

#: seconds between log lines while it keeps failing (the first failure is logged at once)
OUTAGE_LOG_INTERVAL = 60.0


class Outage:
    """A dependency failing since ``started``: counts the failed attempts, says when to log again."""

    __slots__ = ("failures", "logged", "started")

    def __init__(self, now: float) -> None:
        self.started = self.logged = now
        self.failures = 1

    def failed(self, now: float) -> bool:
        """One more failed attempt; True when it should be logged (once per :data:`OUTAGE_LOG_INTERVAL`)."""
        self.failures += 1
        if now - self.logged < OUTAGE_LOG_INTERVAL:
            return False
        self.logged = now
        return True
