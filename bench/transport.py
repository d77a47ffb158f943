"""Per record or per bundle: what PyFlink's crossing into Python costs the tracking job's
shape of work, before and after handing records over in bundles.

    python -m bench.transport [--pings 300000 --trucks 100000 --repeat 2 --shards 32]

Two cuts of a job (:mod:`bench.jobs.stages`) on one preloaded input and one private Kafka and
Redis, alternating: ``state`` validates each ping and reads and writes its truck's state, one
Python call per record (the transport the tracking job is built on); ``batch`` does the same
work with the records bundled in the JVM by shard (:mod:`flink_jobs.bundling`), one Python call
per bundle, the truck's state in map state. Both run embedded at parallelism 1. Printed per run:
pings/s and CPU µs per ping of the job's process tree; then the median ratio batch/state.

``--truck`` compares the truck function's own work the same way: ``truck`` (``TruckFunction``
per record, with its timers, each output handed to a Python operator) against ``batch-truck``
(its arrival path on bundles, outputs pickled once per bundle, no timers; see
:mod:`bench.jobs.stages`).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import click


@click.command()
@click.option("--pings", default=300_000, show_default=True)
@click.option("--trucks", default=100_000, show_default=True)
@click.option("--repeat", default=2, show_default=True, help="Runs of each cut.")
@click.option("--shards", default=32, show_default=True)
@click.option("--flush-ms", default=200, show_default=True,
              help="Longest a bundle waits (watermarks flush sooner).")
@click.option("--truck", is_flag=True,
              help="Compare the truck function's work instead: stages truck / batch-truck.")
def main(pings: int, trucks: int, repeat: int, shards: int, flush_ms: int, truck: bool) -> None:
    """Alternate the per-record and the bundled cut; print rates and the ratio."""
    from bench.context import Context, Sizes
    from bench.runs import run_consumer
    from bench.sections.profile import stage_argv
    from bench.sections.throughput import run_timeout_s
    from bench.support import exit_on_sigterm, log, running_stack

    exit_on_sigterm()
    per_record, bundled = ("truck", "batch-truck") if truck else ("state", "batch")
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="fleetpulse-transport-"))
    with running_stack() as stack:
        ctx = Context(stack, work, Sizes(partitions=4), None)
        ds = ctx.dataset(trucks, pings)
        for i in range(repeat):
            for stage in (per_record, bundled):
                argv = stage_argv(ctx, ds.topic, stage)
                if stage == bundled:
                    argv += ["--shards", str(shards), "--batch-ms", str(flush_ms)]
                log(f"run {i + 1}/{repeat}: {stage}")
                row = run_consumer(stack, ds, f"{stage} #{i + 1}", argv, work,
                                   run_timeout_s(ds), done_key="bench:done")
                rows.append({**row, "stage": stage})
    click.echo(f"\n{pings:,} pings / {trucks:,} trucks, p=1, {shards} shards, "
               f"bundles flushed within {flush_ms} ms")
    click.echo("| run | status | pings/s | CPU µs/ping |\n|---|---|---|---|")
    for r in rows:
        click.echo(f"| {r['name']} | {r['status']} | {r.get('rate', '-'):,} | "
                   f"{r.get('cpu_us_per_ping', '-')} |")
    rates = {s: [r["rate"] for r in rows if r["stage"] == s and r["status"] == "ok"]
             for s in (per_record, bundled)}
    if rates[per_record] and rates[bundled]:
        state, batch = statistics.median(rates[per_record]), statistics.median(rates[bundled])
        click.echo(f"\nmedian rate: per record {state:,.0f}/s, bundled {batch:,.0f}/s, "
                   f"ratio {batch / state:.2f}x")


if __name__ == "__main__":
    main()
