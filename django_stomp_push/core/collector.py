"""Python's garbage collector during a storm of connects.

Every connection keeps a few hundred objects the cyclic collector tracks (its server's protocol, the scope, the
session, the connection's own state). While thousands of clients connect at once, most new objects survive, so the
collector keeps promoting them and runs full collections that walk every object of every open connection: at 2,000
connections about 370,000 objects and 135 ms a collection, a sixth of a storm's CPU (docs/performance.md).

While more than :data:`STORM_PENDING` connections of the process wait for their CONNECT to be answered, the
collector's thresholds are raised to :data:`STORM_THRESHOLDS` (young collections every 50,000 allocations instead
of 700, full ones a hundred times rarer); they are put back as soon as none waits. What the storm leaves as
garbage is collected then: its memory is bounded by the raised young threshold, not by the storm's length.
Thresholds the project set itself (anything but Python's default) are left alone, and ``DEFER_GC_IN_STORMS: False``
turns this off.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger("django_stomp_push")

#: Connections waiting for their CONNECT's answer from which the process counts as in a storm.
STORM_PENDING = 64
#: The collector's thresholds during a storm.
STORM_THRESHOLDS = (50_000, 20, 100)
#: Python's default thresholds: only these are raised.
DEFAULT_THRESHOLDS = (700, 10, 10)


class StormCollector:
    """Raises the collector's thresholds while any event loop of the process is in a storm (the gates report)."""

    def __init__(self) -> None:
        self.storms = 0  # event loops in a storm now
        self._saved: tuple[int, ...] | None = None
        #: storms seen, for operators and tests
        self.deferred = 0

    def entered(self) -> None:
        """An event loop entered a storm."""
        self.storms += 1
        if self.storms == 1 and gc.get_threshold() == DEFAULT_THRESHOLDS:
            self._saved = gc.get_threshold()
            gc.set_threshold(*STORM_THRESHOLDS)
            self.deferred += 1
            logger.info("django-stomp-push: a storm of connects; garbage collection deferred until it is over")

    def left(self) -> None:
        """An event loop that had entered a storm left it."""
        self.storms -= 1
        if self.storms == 0 and self._saved is not None:
            if gc.get_threshold() == STORM_THRESHOLDS:  # unless the project changed them meanwhile
                gc.set_threshold(*self._saved)
            self._saved = None


#: The process's one collector policy (thresholds are process-wide).
collector = StormCollector()
