"""Per record or per bundle: what PyFlink's crossing into Python costs the tracking job's
shape of work, before and after handing records over in bundles.

    python -m bench.transport [--pings 300000 --trucks 100000 --repeat 2 --shards 32]

Two cuts of a job (:mod:`bench.jobs.stages`) on one preloaded input and one private Kafka and
Redis, alternating: ``state`` validates each ping and reads and writes its truck's state, one
Python call per record (the transport the tracking job is built on); ``batch`` does the same
work with the records bundled in the JVM by shard (:mod:`flink_jobs.tracking.bundling`), one
Python call
per bundle, the truck's state in map state. Both run embedded at parallelism 1 (``--cluster N``:
with `flink run -py` on N pinned TaskManagers, at parallelism N). Printed per run:
pings/s and CPU µs per ping of the job's process tree; then the median ratio batch/state.

``--truck`` compares the truck function's own work the same way: ``truck`` (``TruckFunction``
per record, with its timers, each output handed to a Python operator) against ``batch-truck``
(its arrival path on bundles, outputs pickled once per bundle, no timers; see
:mod:`bench.jobs.stages`).

``--job`` compares the whole tracking job, as deployed, in its two modes: ``--bundle-shards 0``
(one Python call per ping) against ``--bundle-shards <--shards>``, timed like the throughput
benchmark (until every truck's last position is readable in Redis).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import click


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


def on_cluster(
    stack: Any,
    ds: Any,
    name: str,
    argv: list[str],
    work: Path,
    taskmanagers: int,
    done_key: str | None,
    root: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One timed run of a job (``argv`` as for an embedded run, ``python -m module ...``)
    submitted to a fresh standalone cluster of ``taskmanagers`` pinned TaskManagers, at that
    parallelism. ``argv[0]``'s interpreter runs the job's Python; ``root`` (this checkout by
    default) holds its code, and ``env`` is added to the client's environment (another
    revision's, for :mod:`bench.compare`)."""
    from bench.runs import run_consumer, unique_group
    from bench.sections.throughput import run_timeout_s
    from fleetpulse.paths import PROJECT_ROOT
    from fleetpulse.services.flink import flink_env, submit_argv
    from fleetpulse.services.flink_cluster import StandaloneCluster
    from fleetpulse.waiting import free_port

    python, module, args = argv[0], argv[2], argv[3:]  # `python -m module args`
    args[args.index("--parallelism") + 1] = str(taskmanagers)
    root = root or PROJECT_ROOT
    cluster = StandaloneCluster(
        work / unique_group("cluster"),
        rest_port=free_port(),
        rpc_port=free_port(),
        taskmanagers=taskmanagers,
        slots_per_taskmanager=1,
        pin_taskmanagers=True,
        python=python,
        project_root=root,
    )
    try:
        cluster.start()
        submit = submit_argv(
            cluster.rest_url, module, args, detached=False, python=python, root=root
        )
        return run_consumer(
            stack,
            ds,
            name,
            submit,
            work,
            run_timeout_s(ds),
            env={**flink_env(), **(env or {})},
            also_measured=cluster.pids(),
            done_key=done_key,
        )
    finally:
        cluster.stop()


@click.command()
@click.option("--pings", default=300_000, show_default=True)
@click.option("--trucks", default=100_000, show_default=True)
@click.option("--repeat", default=2, show_default=True, help="Runs of each cut.")
@click.option("--shards", default=32, show_default=True)
@click.option(
    "--flush-ms",
    default=200,
    show_default=True,
    help="Longest a bundle waits (watermarks flush sooner).",
)
@click.option(
    "--truck",
    is_flag=True,
    help="Compare the truck function's work instead: stages truck / batch-truck.",
)
@click.option(
    "--job",
    is_flag=True,
    help="Compare the tracking job itself: --bundle-shards 0 / --bundle-shards SHARDS.",
)
@click.option(
    "--cluster",
    "taskmanagers",
    type=int,
    default=0,
    help="Submit each run with `flink run -py` to a fresh standalone cluster of this "
    "many TaskManagers (one slot and one pinned CPU each), at that parallelism.",
)
def main(
    pings: int,
    trucks: int,
    repeat: int,
    shards: int,
    flush_ms: int,
    truck: bool,
    job: bool,
    taskmanagers: int,
) -> None:
    """Alternate the per-record and the bundled cut; print rates and the ratio."""
    from bench.context import Context, Sizes
    from bench.runs import run_consumer
    from bench.sections.throughput import run_timeout_s, tracking_argv
    from bench.support import exit_on_sigterm, log, running_stack

    exit_on_sigterm()
    per_record, bundled = (
        ("job per record", "job bundled")
        if job
        else ("truck", "batch-truck")
        if truck
        else ("state", "batch")
    )
    done_key = None if job else "bench:done"
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="fleetpulse-transport-"))
    with running_stack() as stack:
        ctx = Context(stack, work, Sizes(partitions=4), None)
        ds = ctx.dataset(trucks, pings)
        for i in range(repeat):
            for stage in (per_record, bundled):
                if job:
                    argv = tracking_argv(ctx, ds, 1) + [
                        "--bundle-shards",
                        str(shards if stage == bundled else 0),
                        "--bundle-flush-ms",
                        str(flush_ms),
                    ]
                else:
                    argv = stage_argv(ctx, ds.topic, stage)
                    if stage == bundled:
                        argv += ["--shards", str(shards), "--batch-ms", str(flush_ms)]
                log(f"run {i + 1}/{repeat}: {stage}")
                if taskmanagers:
                    row = on_cluster(
                        stack, ds, f"{stage} #{i + 1}", argv, work, taskmanagers, done_key
                    )
                else:
                    row = run_consumer(
                        stack,
                        ds,
                        f"{stage} #{i + 1}",
                        argv,
                        work,
                        run_timeout_s(ds),
                        done_key=done_key,
                    )
                rows.append({**row, "stage": stage})
    where = (
        f"flink run -py on {taskmanagers} pinned TaskManagers, p={taskmanagers}"
        if taskmanagers
        else "embedded, p=1"
    )
    click.echo(
        f"\n{pings:,} pings / {trucks:,} trucks, {where}, {shards} shards, "
        f"bundles flushed within {flush_ms} ms"
    )
    click.echo("| run | status | pings/s | CPU µs/ping |\n|---|---|---|---|")
    for r in rows:
        click.echo(
            f"| {r['name']} | {r['status']} | {r.get('rate', '-'):,} | "
            f"{r.get('cpu_us_per_ping', '-')} |"
        )
    rates = {
        s: [r["rate"] for r in rows if r["stage"] == s and r["status"] == "ok"]
        for s in (per_record, bundled)
    }
    if rates[per_record] and rates[bundled]:
        state, batch = statistics.median(rates[per_record]), statistics.median(rates[bundled])
        click.echo(
            f"\nmedian rate: per record {state:,.0f}/s, bundled {batch:,.0f}/s, "
            f"ratio {batch / state:.2f}x"
        )


if __name__ == "__main__":
    main()
