"""What the tracking job's bundled transport costs, and what the truck function adds to it.

    python -m bench.transport [--pings 300000 --trucks 100000 --repeat 2 --shards 32]
                              [--cluster N]

Two cuts of the job (:mod:`bench.jobs.stages`) on one preloaded input and one private Kafka and
Redis, alternating (:mod:`bench.alternate`): ``batch``, the Kafka source and the JVM bundler
(:mod:`flink_jobs.tracking.bundling`) handing one Python call per bundle that validates each
ping and keeps its truck's state in map state, the transport alone; ``batch-truck``, the same
plus the truck function's arrival path. Both run embedded at parallelism 1 (``--cluster N``:
with `flink run -py` on N pinned TaskManagers, at parallelism N). Printed per run: pings/s and
CPU µs per ping of the job's process tree; then the medians: the difference in CPU per ping is
the truck function's own work. (The per-record transport this once compared against is gone:
the bundled one did 3.2x its rate, commit 2665ffe.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bench.alternate import run_options

STAGES = ("batch", "batch-truck")


def stage_argv(ctx: Any, topic: str, stage: str) -> list[str]:
    """A cut of the job (:mod:`bench.jobs.stages`), bounded at parallelism 1."""
    from bench.runs import unique_group
    from bench.support import python_argv

    t = ctx.stack.topics
    group = unique_group(f"bench-{stage}")
    return python_argv(
        "bench.jobs.stages",
        "--stage",
        stage,
        "--bootstrap",
        ctx.stack.bootstrap,
        "--redis-url",
        ctx.stack.redis_url,
        "--gps-topic",
        topic,
        "--alerts-topic",
        t.alerts,
        "--dlq-topic",
        t.dlq,
        "--geofence-topic",
        t.geofence_events,
        "--group-id",
        group,
        "--bounded",
        "--checkpoint-dir",
        str(ctx.workdir / "checkpoints" / group),
        "--parallelism",
        "1",
    )


@click.command()
@run_options(pings=300_000, trucks=100_000, repeat_help="Runs of each cut.")
@click.option("--shards", default=32, show_default=True)
@click.option(
    "--flush-ms",
    default=200,
    show_default=True,
    help="Longest a bundle waits (watermarks flush sooner).",
)
def main(
    pings: int, trucks: int, repeat: int, shards: int, flush_ms: int, taskmanagers: int
) -> None:
    """Alternate the transport alone and with the truck's work; print rates and CPU."""
    from bench.alternate import Variant, alternate, echo_medians, echo_rows, where
    from bench.context import Context, Sizes
    from bench.jobs.stages import DONE_KEY
    from bench.support import exit_on_sigterm, running_stack

    exit_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="fleetpulse-transport-"))
    with running_stack() as stack:
        ctx = Context(stack, work, Sizes(partitions=4), None)
        ds = ctx.dataset(trucks, pings)

        def stage(name: str) -> Callable[[], list[str]]:
            """The cut ``name`` with its bundling flags (fresh per run)."""
            bundling = ["--shards", str(shards), "--batch-ms", str(flush_ms)]
            return lambda: stage_argv(ctx, ds.topic, name) + bundling

        variants = tuple(Variant(s, stage(s), done_key=DONE_KEY) for s in STAGES)
        rows = alternate(stack, ds, work, variants, repeat, taskmanagers)
    click.echo(
        f"\n{pings:,} pings / {trucks:,} trucks, {where(taskmanagers)}, {shards} shards, "
        f"bundles flushed within {flush_ms} ms"
    )
    echo_rows(rows)
    echo_medians(rows)


if __name__ == "__main__":
    main()
