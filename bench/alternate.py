"""A/B runs that take turns (a, b, a, b, ...) on one dataset and one private Kafka and Redis.

An optimisation is judged by the ratio of two runs on the same machine, the same input and the
same minute, so neither side gets the quieter minutes. Shared by :mod:`bench.compare` (two git
revisions) and :mod:`bench.transport` (two cuts of the tracking job).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:  # the rest is imported when a run starts: --help stays quick
    from bench.data import Dataset
    from bench.support import Stack

F = TypeVar("F", bound=Callable[..., Any])


def run_options(pings: int, trucks: int, repeat_help: str) -> Callable[[F], F]:
    """The options of every alternating benchmark: the input's size, the rounds and where the
    runs go (``--cluster``, passed on as ``taskmanagers``)."""
    options = (
        click.option("--pings", default=pings, show_default=True),
        click.option("--trucks", default=trucks, show_default=True),
        click.option("--repeat", default=2, show_default=True, help=repeat_help),
        click.option(
            "--cluster",
            "taskmanagers",
            type=int,
            default=0,
            help="Submit each run with `flink run -py` to a fresh standalone cluster of this "
            "many TaskManagers (one slot and one pinned CPU each), at that parallelism.",
        ),
    )

    def add(command: F) -> F:
        for option in reversed(options):  # as if stacked above the command, in this order
            command = option(command)
        return command

    return add


@dataclass(frozen=True)
class Variant:
    """One side of the comparison. ``argv`` is called once per run: each run needs a consumer
    group (and checkpoint folder) of its own, or it would resume where the last one stopped."""

    label: str
    argv: Callable[[], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    root: Path | None = None  # the checkout holding the job's code (default: this one)
    done_key: str | None = None  # see bench.runs.run_consumer


def alternate(
    stack: Stack,
    ds: Dataset,
    work: Path,
    variants: tuple[Variant, ...],
    repeat: int,
    taskmanagers: int,
) -> list[dict[str, Any]]:
    """``repeat`` rounds of one run per variant (:func:`bench.runs.timed_run`); the rows, each
    with its variant's ``label``."""
    from bench.runs import timed_run
    from bench.support import log

    rows: list[dict[str, Any]] = []
    for i in range(repeat):
        for v in variants:
            log(f"run {i + 1}/{repeat}: {v.label}")
            name = f"{v.label} #{i + 1}"
            row = timed_run(
                stack, ds, name, v.argv(), work, taskmanagers, v.done_key, v.root, v.env
            )
            rows.append({**row, "label": v.label})
    return rows


def where(taskmanagers: int, parallelism: int = 1) -> str:
    """How the runs were deployed, for the heading."""
    if taskmanagers:
        return f"flink run -py on {taskmanagers} pinned TaskManagers, p={taskmanagers}"
    return f"embedded, p={parallelism}"


def echo_rows(rows: list[dict[str, Any]]) -> None:
    """Each run as a Markdown table row."""
    click.echo("| run | status | pings/s | CPU µs/ping |\n|---|---|---|---|")
    for r in rows:
        click.echo(
            f"| {r['name']} | {r['status']} | {r.get('rate', '-'):,} | "
            f"{r.get('cpu_us_per_ping', '-')} |"
        )


def echo_medians(rows: list[dict[str, Any]]) -> None:
    """The median rate and CPU per ping of each side's successful runs, and the rate ratio
    second/first; nothing when a side has none."""
    ok = {
        label: [r for r in rows if r["label"] == label and r["status"] == "ok"]
        for label in dict.fromkeys(r["label"] for r in rows)
    }
    if len(ok) != 2 or not all(ok.values()):
        return
    (first, a), (second, b) = ok.items()
    rate_a = statistics.median(r["rate"] for r in a)
    rate_b = statistics.median(r["rate"] for r in b)
    cpu_a = statistics.median(r["cpu_us_per_ping"] for r in a)
    cpu_b = statistics.median(r["cpu_us_per_ping"] for r in b)
    click.echo(
        f"\nmedian: {first} {rate_a:,.0f} pings/s at {cpu_a:g} CPU µs/ping, {second} "
        f"{rate_b:,.0f} pings/s at {cpu_b:g} CPU µs/ping; rate ratio {rate_b / rate_a:.2f}x"
    )
