"""CPU time and resident memory of processes, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_s: float  # user + system seconds since the process started
    rss: int  # bytes


def usage(pid: int) -> Usage:
    """One process's usage; zero when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        with open(f"/proc/{pid}/statm") as f:
            resident_pages = int(f.read().split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return Usage(0.0, 0)
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15.
    return Usage((int(fields[11]) + int(fields[12])) / _TICKS, resident_pages * os.sysconf("SC_PAGE_SIZE"))


def total(pids: list[int]) -> Usage:
    parts = [usage(pid) for pid in pids]
    return Usage(sum(p.cpu_s for p in parts), sum(p.rss for p in parts))


def with_children(pid: int) -> list[int]:
    """``pid`` and its direct children (the load generator's workers)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if ppid == pid:
            children.append(int(entry))
    return [pid, *children]


def cpu_percent(start: Usage, end: Usage, seconds: float) -> float:
    """Percent of one core over the interval."""
    return 100.0 * (end.cpu_s - start.cpu_s) / seconds if seconds > 0 else 0.0


def machine() -> Usage:
    """CPU seconds all cores spent busy since boot (to see what else ran during a measurement)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return Usage((user + nice + system + irq + softirq + steal) / _TICKS, 0)
