"""The open transactions of one connection, each holding its SEND/ACK/NACK events until COMMIT or ABORT."""

from __future__ import annotations

from .errors import LimitExceeded, ProtocolViolation
from .events import Event


class OpenTransactions:
    """Transactions begun and not yet committed or aborted, with the events each one holds, in order."""

    def __init__(self, max_open: int, max_frames: int) -> None:
        self.max_open = max_open
        #: Events one transaction may hold.
        self.max_frames = max_frames
        self._held: dict[str, list[Event]] = {}

    def check(self, name: str) -> None:
        """Raise :class:`ProtocolViolation` unless ``name`` is open."""
        if name not in self._held:
            raise ProtocolViolation("unknown transaction", f"transaction {name!r} was not begun")

    def begin(self, name: str) -> None:
        if name in self._held:
            raise ProtocolViolation("duplicate transaction", f"transaction {name!r} is already open")
        if len(self._held) >= self.max_open:
            raise LimitExceeded("too many transactions", f"the limit is {self.max_open} open at once")
        self._held[name] = []

    def hold(self, name: str, event: Event) -> None:
        self.check(name)
        held = self._held[name]
        if len(held) >= self.max_frames:
            raise LimitExceeded(
                "too many frames in transaction",
                f"transaction {name!r} holds {len(held)} frames; the limit is {self.max_frames}",
            )
        held.append(event)

    def end(self, name: str) -> list[Event]:
        """Close ``name`` (COMMIT or ABORT) and return the events it held."""
        self.check(name)
        return self._held.pop(name)
