"""CPU affinity for the Flink processes: which cores a JVM with an embedded interpreter runs on.

Why: in thread mode every Python operator of a TaskManager runs on its own task thread, and
all of them share one interpreter lock. Each record hands the lock from one thread to the
next, tens of thousands of times a second. When those threads sit on different cores, each
handoff wakes a thread on the other core (an inter-processor interrupt, costly in a virtual
machine). On the 2-core machine this was about a quarter of the TaskManager's CPU. The Python
work cannot use a second core anyway, because of the lock. Pinning the process to one core
makes every handoff local: the embedded tracking job ran 1.24-1.79x faster, and two
TaskManagers pinned to a core each 1.17-1.33x faster (docs/tracking.md).

Linux only (``os.sched_setaffinity``); children inherit the affinity, so pinning the process
that launches a JVM pins the JVM.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


class AffinityError(ValueError):
    """A CPU list that cannot be parsed or names CPUs this process may not use."""


def parse_cpu_list(text: str) -> frozenset[int]:
    """``"0"``, ``"0,2"``, ``"0-3"``, ``"0-1,4"`` (the kernel's cpulist format) as a set;
    empty text is the empty set (no pinning)."""
    cpus: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise AffinityError(
                f"{part!r} is not a CPU number or range (like 0, 0-1 or 0,2)"
            ) from None
        if first < 0 or last < first:
            raise AffinityError(f"{part!r} is not a CPU range (like 0-1)")
        cpus.update(range(first, last + 1))
    if text.strip() and not cpus:
        raise AffinityError(f"{text!r} names no CPU")
    return frozenset(cpus)


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def check_usable(cpus: frozenset[int]) -> None:
    """AffinityError unless every CPU in ``cpus`` is one this process may run on."""
    usable = usable_cpus()
    missing = sorted(cpus.difference(usable))
    if missing:
        raise AffinityError(
            f"CPU {', '.join(map(str, missing))} is not available here "
            f"(this process may use {format_cpu_list(usable)})"
        )


def pin_current_process(cpus: frozenset[int]) -> None:
    """Restrict this process (and the processes it starts from now on) to ``cpus``."""
    check_usable(cpus)
    os.sched_setaffinity(0, cpus)


def one_cpu_each(count: int) -> list[frozenset[int]]:
    """A CPU for each of ``count`` processes, round robin over the usable ones."""
    usable = usable_cpus()
    return [frozenset({usable[i % len(usable)]}) for i in range(count)]


def format_cpu_list(cpus: Iterable[int]) -> str:
    """The kernel's cpulist format: ``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    parts: list[str] = []
    ordered = sorted(cpus)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)
