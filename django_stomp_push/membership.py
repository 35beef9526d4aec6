"""A hub's channel-layer group memberships, through one bounded path.

Connections only count their uses of a group (:meth:`Membership.join`, :meth:`Membership.leave`); a few workers
bring the channel layer in line with at most :data:`MEMBERSHIP_CONCURRENCY` commands in flight. Thousands of groups
left at once (clients with hundreds of subscriptions dropping together, a mass logout) would otherwise take one
redis-py pool connection each; past ``max_connections`` the pool raises for every command of the process, the
SUBSCRIBEs and pushes of unrelated clients included. The in-memory layer needs no commands and pays for none of this.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger("django_stomp_push")

#: channel-layer group commands (join, leave, re-join) one hub has in flight at most: a few connections of the
#: redis-py pool, however many groups change at once
MEMBERSHIP_CONCURRENCY = 8
#: attempts to leave a group before it is left to the layer's ``group_expiry``, the first retry after
#: :data:`LEAVE_RETRY_DELAY` seconds, doubling
LEAVE_ATTEMPTS = 4
LEAVE_RETRY_DELAY = 0.5


class Membership:
    """The channel-layer groups of one hub, each with the number of its local users.

    :meth:`join` counts a user and returns once the group is joined on the layer; :meth:`leave` uncounts one and
    returns at once. The layer is brought in line by workers that take the groups whose state differs, joins
    before leaves (a client waits for its RECEIPT; nobody waits for a leave), with at most ``concurrency``
    commands in flight, re-joins included. One group has one command in flight at a time; a leave still queued
    when the group is joined again costs no command at all.
    """

    def __init__(self, layer: Any, local: bool, concurrency: int = MEMBERSHIP_CONCURRENCY) -> None:
        self.layer = layer
        #: The in-memory layer: counting is all there is to do (see layers.group_send).
        self.local = local
        self.concurrency = concurrency
        self.channel_name: str | None = None
        #: group -> local users of it; a group is wanted while it is here
        self.refs: dict[str, int] = {}
        #: groups the layer has this hub in, as far as it answered
        self._added: set[str] = set()
        #: groups a command failed for midway: in or not, they are left when nobody wants them
        self._unsure: set[str] = set()
        #: the pending join of a group, shared by every caller waiting for it
        self._joins: dict[str, asyncio.Future[None]] = {}
        #: groups to look at, in order (dicts as ordered sets)
        self._to_join: dict[str, None] = {}
        self._to_leave: dict[str, None] = {}
        #: groups with a command in flight; looked at again when it ends
        self._busy: set[str] = set()
        self._leave_failures: dict[str, int] = {}
        self._unleft: list[str] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._workers = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def has_joined(self, group: str) -> bool:
        return group in self.refs

    @property
    def pending(self) -> int:
        """Groups waiting for a command or in one (leaves waiting for a retry not included)."""
        return len(self._to_join) + len(self._to_leave) + len(self._busy)

    async def join(self, group: str) -> None:
        """Count one more local user of ``group``; wait until the hub is in it on the channel layer.

        Callers of the same group meanwhile share one join; one cancelled while waiting (its client left)
        neither cancels nor fails it for the others. A failed join fails its waiters; the next caller tries again.
        """
        self.refs[group] = self.refs.get(group, 0) + 1
        if self.local or (group in self._added and group not in self._busy):
            return
        joining = self._joins.get(group)
        if joining is None:
            joining = self._joins[group] = asyncio.get_running_loop().create_future()
            joining.add_done_callback(_retrieve)
            self._schedule(group)
        try:
            await asyncio.shield(joining)
        except BaseException:
            self.leave(group)  # this caller registers nothing: give its count back
            raise

    def leave(self, group: str) -> None:
        """Count one local user of ``group`` less; the last one's leave is queued for the channel layer."""
        refs = self.refs.get(group, 0) - 1
        if refs > 0:
            self.refs[group] = refs
            return
        self.refs.pop(group, None)
        if not self.local:
            self._schedule(group)

    async def rejoin(self) -> None:
        """Join every joined group again, ``concurrency`` at a time at most with the other commands; raises the
        first failure (the others in flight end, no new one starts)."""
        if self.local:
            return
        groups = iter(list(self._added))
        errors: list[Exception] = []

        async def rejoin_some() -> None:
            for group in groups:
                if errors:
                    return
                if group not in self.refs or group not in self._added or group in self._busy:
                    continue  # being left, or a command of the workers is on it
                self._busy.add(group)
                try:
                    async with self._slots:
                        await self.layer.group_add(group, self.channel_name)
                except Exception as error:
                    errors.append(error)
                finally:
                    self._busy.discard(group)
                    self._recheck(group)

        await asyncio.gather(*(rejoin_some() for _ in range(self.concurrency)))
        if errors:
            raise errors[0]

    # -- the workers ----------------------------------------------------------------------------------------

    def _schedule(self, group: str) -> None:
        if group in self._busy:
            return  # its command's end looks at it again
        if group in self.refs:
            self._to_leave.pop(group, None)
            self._to_join[group] = None
        else:
            self._to_join.pop(group, None)
            self._to_leave[group] = None
        if self._workers < min(self.concurrency, len(self._to_join) + len(self._to_leave)):
            self._workers += 1
            task = asyncio.get_running_loop().create_task(self._work(), name="django_stomp_push groups")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _recheck(self, group: str) -> None:
        """After a command on ``group``: queue it again if what is wanted changed meanwhile."""
        if group in self.refs:
            unsettled = group not in self._added or group in self._joins
        else:
            unsettled = group in self._added or group in self._unsure or group in self._joins
        if unsettled:
            self._schedule(group)

    async def _work(self) -> None:
        try:
            while self._to_join or self._to_leave:
                queue = self._to_join or self._to_leave
                group = next(iter(queue))
                del queue[group]
                if group in self.refs and group not in self._added:
                    command = self._add
                elif group not in self.refs and (group in self._added or group in self._unsure):
                    command = self._discard
                else:  # nothing to do: joined already (a queued leave and a re-join cancelled out), or left
                    joining = self._joins.pop(group, None)
                    if joining is not None and not joining.done():
                        joining.set_result(None)
                    continue
                self._busy.add(group)
                try:
                    async with self._slots:
                        again = await command(group)
                finally:
                    self._busy.discard(group)
                if again:
                    self._recheck(group)
        finally:
            # Counted down here, not in a done callback: a group queued between this worker's last look at
            # the queues and such a callback would find no worker to start and wait for the next change.
            self._workers -= 1
        if self._unleft and not self._workers:
            logger.warning(
                "could not leave %d channel-layer groups (%s, ...) after %d attempts; they expire on their own",
                len(self._unleft),
                self._unleft[0],
                LEAVE_ATTEMPTS,
            )
            self._unleft.clear()

    async def _add(self, group: str) -> bool:
        """group_add; True when the group should be looked at again."""
        try:
            await self.layer.group_add(group, self.channel_name)
        except Exception as error:
            self._unsure.add(group)  # its first command may have landed
            joining = self._joins.pop(group, None)  # (callers that came meanwhile share it: they fail too)
            if joining is not None and not joining.done():
                joining.set_exception(error)
            # While wanted, its waiters leave on the error; the last leave queues it. Not now: that would retry
            # the join for callers that have just failed.
            return group not in self.refs
        self._added.add(group)
        self._unsure.discard(group)
        self._leave_failures.pop(group, None)
        joining = self._joins.pop(group, None)
        if joining is not None and not joining.done():
            joining.set_result(None)
        return True

    async def _discard(self, group: str) -> bool:
        """group_discard, retried a few times with backoff; True when the group should be looked at again."""
        try:
            await self.layer.group_discard(group, self.channel_name)
        except Exception:
            self._added.discard(group)
            failures = self._leave_failures.get(group, 0) + 1
            if failures < LEAVE_ATTEMPTS:
                self._leave_failures[group] = failures
                self._unsure.add(group)
                delay = LEAVE_RETRY_DELAY * 2 ** (failures - 1)
                asyncio.get_running_loop().call_later(delay, self._recheck, group)
            else:
                self._leave_failures.pop(group, None)
                self._unsure.discard(group)
                self._unleft.append(group)
            return group in self.refs  # wanted again meanwhile: join it now
        self._added.discard(group)
        self._unsure.discard(group)
        self._leave_failures.pop(group, None)
        return True


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a join's failure retrieved: every waiter may have been cancelled before it came."""
    if not future.cancelled():
        future.exception()
