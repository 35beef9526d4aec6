"""Scenarios, one module each, registered by name in :data:`SCENARIOS`.

A scenario is a function ``run(bench) -> list[Table]``. Load scenarios call
``bench.measure(target, layer, load, timeout)`` once per repeat (``load`` is a loadgen.mjs config); others start
a server with ``with bench.server(target, layer) as deployment:`` (or none at all) and time what they need. Either
way they fill ``report.Table``s whose columns are compared with the ``baselines`` columns of the same run, one
``Measurement`` per cell with one value per repeat (``bench.repeats``; small sizes when ``bench.smoke``).
To add one: write ``bench/scenarios/<name>.py`` defining ``SCENARIO = Scenario(...)`` and list it below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..harness import Bench
    from ..report import Table


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Bench], list[Table]]
    #: part of ``--smoke`` (which runs it with tiny sizes)
    smoke: bool = True


def _registry() -> dict[str, Scenario]:
    from . import (
        connect_storm,
        deploy_restart,
        fanout,
        idle,
        latency,
        push_sync,
        scale,
        scale_redis,
        session_close,
        sweep,
    )

    scenarios = (
        fanout.SCENARIO,
        latency.SCENARIO,
        idle.RSS_SCENARIO,
        idle.MANY_IDLE_SCENARIO,
        session_close.SCENARIO,
        sweep.SCENARIO,
        connect_storm.SCENARIO,
        deploy_restart.SCENARIO,
        push_sync.SCENARIO,
        scale.SCENARIO,
        scale_redis.SCENARIO,
    )
    return {s.name: s for s in scenarios}


SCENARIOS: dict[str, Scenario] = _registry()
