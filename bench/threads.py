"""Where a running job's CPU goes, thread by thread: the JVM's task threads (each Python
operator of a thread-mode job runs on its task's thread), its Kafka clients, garbage
collector and JIT compiler, and Redis.

    python -m bench.threads --pid JVM_PID [--pid REDIS_PID ...] [--seconds 20]

Reads ``/proc/<pid>/task/<tid>/stat`` twice, ``--seconds`` apart, and prints the CPU each
thread used in between, in cores, grouped by thread name (the kernel keeps the first 15
characters of a Java thread's name; numbers at the end are folded, so the 2 GC workers show as
one row). Run it while a benchmark is in its steady state (``bench.compare`` and
``bench.transport`` print their progress; the JVM of an embedded job is the ``java`` child of
the job's process). ``fleetpulse bench --only profile`` does this by itself
(:class:`ThreadWindow`).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import click

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_TRAILING_NUMBER = re.compile(r"[\s#\-_]*\d+$")


def thread_ticks(pid: int) -> dict[tuple[int, str], int]:
    """CPU ticks (user + system) of each live thread of ``pid``, by (tid, name)."""
    out: dict[tuple[int, str], int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[(int(task.name), name)] = int(fields[11]) + int(fields[12])
    return out


def group_name(name: str) -> str:
    """A thread's row: its name without a trailing number (GC and compiler pools fold)."""
    return _TRAILING_NUMBER.sub("", name) or name


def cores_by_group(
    before: dict[tuple[int, str], int], after: dict[tuple[int, str], int], seconds: float
) -> dict[str, float]:
    """Cores each group of threads used between two readings (threads born in between count
    from zero)."""
    used: dict[str, float] = {}
    for key, ticks in after.items():
        group = group_name(key[1])
        used[group] = used.get(group, 0.0) + (ticks - before.get(key, 0)) / CLOCK_TICKS / seconds
    return used


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return f"pid {pid}"


class ThreadWindow:
    """Per-thread CPU of a consumer's process tree (and of the processes ``others``, such as
    redis-server) between two points of its progress, so that neither start-up nor the tail
    counts: the ``on_progress`` hook of :func:`bench.runs.run_consumer`.

    ``rows`` ends up as [{process, threads, cores}], most cores first; ``seconds`` and
    ``fraction`` are the window's length in time and in share of the input."""

    def __init__(
        self, others: tuple[int, ...] = (), start: float = 0.25, end: float = 0.75
    ) -> None:
        self.others = others
        self.start, self.end = start, end
        self._first: tuple[float, float, dict[int, dict[tuple[int, str], int]]] | None = None
        self.rows: list[dict[str, Any]] = []
        self.seconds = self.fraction = 0.0

    def _read(self, child_pid: int) -> dict[int, dict[tuple[int, str], int]]:
        from bench.support import process_tree

        ticks = {}
        for pid in [*process_tree(child_pid), *self.others]:
            try:
                ticks[pid] = thread_ticks(pid)
            except OSError:  # ended meanwhile
                continue
        return ticks

    def __call__(self, fraction: float, child_pid: int) -> None:
        if self.rows or fraction < self.start:
            return
        if self._first is None:
            self._first = (time.monotonic(), fraction, self._read(child_pid))
            return
        if fraction < self.end:
            return
        t0, f0, before = self._first
        after = self._read(child_pid)
        self.seconds, self.fraction = time.monotonic() - t0, fraction - f0
        for pid, ticks in after.items():
            name = process_name(pid)
            for group, cores in cores_by_group(before.get(pid, {}), ticks, self.seconds).items():
                if cores >= 0.005:
                    self.rows.append({"process": name, "threads": group, "cores": round(cores, 2)})
        self.rows.sort(key=lambda r: -r["cores"])


@click.command()
@click.option(
    "--pid",
    "pids",
    type=int,
    multiple=True,
    required=True,
    help="A process to watch (repeatable: the JVM, redis-server, ...).",
)
@click.option("--seconds", default=20.0, show_default=True)
@click.option("--top", default=25, show_default=True, help="Rows to print per process.")
def main(pids: tuple[int, ...], seconds: float, top: int) -> None:
    """Print the cores each thread group of each process used over ``--seconds``."""
    before = {pid: thread_ticks(pid) for pid in pids}
    start = time.monotonic()
    time.sleep(seconds)
    after = {pid: thread_ticks(pid) for pid in pids}
    elapsed = time.monotonic() - start
    for pid in pids:
        used = cores_by_group(before[pid], after[pid], elapsed)
        comm = process_name(pid)
        print(f"\n{comm} (pid {pid}): {sum(used.values()):.2f} cores over {elapsed:.1f} s")
        print("| threads | cores |\n|---|---|")
        for name, cores in sorted(used.items(), key=lambda item: -item[1])[:top]:
            if cores >= 0.005:
                print(f"| {name} | {cores:.2f} |")


if __name__ == "__main__":
    main()
