"""The deliveries of one connection that await an ACK or NACK (subscriptions in a client ack mode)."""

from __future__ import annotations

from collections import OrderedDict

from .errors import TooManyUnacknowledged


class PendingAcks:
    """Which delivered messages await an ACK/NACK, in delivery order, and what each open transaction settled.

    An ACK/NACK inside a transaction settles its messages at once (a second ACK of one of them is an error), and
    an ABORT makes them pending again.
    """

    def __init__(self, limit: int) -> None:
        #: At most this many messages await an ACK/NACK at once.
        self.limit = limit
        # message-id -> subscription id, in delivery order
        self._pending: OrderedDict[str, str] = OrderedDict()
        # open transaction -> the (message-id, subscription id) pairs its ACK/NACKs settled
        self._settled_in: dict[str, list[tuple[str, str]]] = {}

    def expect(self, message_id: str, subscription_id: str) -> None:
        """Await an ACK/NACK for ``message_id``; raises :class:`TooManyUnacknowledged` past :attr:`limit`."""
        if len(self._pending) >= self.limit:
            raise TooManyUnacknowledged("too many unacknowledged messages", f"the limit is {self.limit}")
        self._pending[message_id] = subscription_id

    def subscription_of(self, message_id: str) -> str | None:
        """The id of the subscription ``message_id`` was delivered to, if it awaits an ACK/NACK."""
        return self._pending.get(message_id)

    def settle(self, message_id: str, subscription_id: str, cumulative: bool, transaction: str | None) -> None:
        """Stop awaiting ``message_id`` (and, ``cumulative``, every earlier message of its subscription)."""
        pending = self._pending
        if cumulative:
            settled = []
            for earlier in list(pending):
                if pending[earlier] == subscription_id:
                    del pending[earlier]
                    settled.append((earlier, subscription_id))
                if earlier == message_id:
                    break
        else:
            del pending[message_id]
            settled = [(message_id, subscription_id)]
        if transaction is not None:
            self._settled_in[transaction].extend(settled)

    def forget(self, subscription_id: str) -> None:
        """The subscription ended: none of its messages awaits anything any more, even after an ABORT."""
        for message_id in [m for m, s in self._pending.items() if s == subscription_id]:
            del self._pending[message_id]
        for name, settled in self._settled_in.items():
            self._settled_in[name] = [(m, s) for m, s in settled if s != subscription_id]

    def begin(self, transaction: str) -> None:
        self._settled_in[transaction] = []

    def commit(self, transaction: str) -> None:
        del self._settled_in[transaction]

    def abort(self, transaction: str) -> None:
        """The transaction's ACK/NACKs never happened: their messages await again."""
        # They go first, where 'client' (cumulative) mode needs them: every delivery still pending on their
        # subscription came after them.
        self._pending = OrderedDict([*self._settled_in.pop(transaction), *self._pending.items()])
