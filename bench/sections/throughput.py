"""Measures 1 and 2: the tracking job's sustained rate on a preloaded topic, and its peers'.

Keys: ``pings``, ``trucks``, ``topic``, ``partitions``, ``bytes_per_ping``, ``runs`` (one row
per consumer, see :func:`bench.runs.run_consumer`), ``best`` (the fastest fleetpulse row),
``ratios`` (best fleetpulse rate / each peer's rate), ``pin_ratios`` (each pinned run's rate
/ the same run's unpinned rate).
"""

from __future__ import annotations

from typing import Any

from bench.checkpoint_store import CheckpointStore, describe, local_store, open_store
from bench.context import Context
from bench.data import Dataset
from bench.report import NOT_MEASURED, ratio
from bench.runs import on_cluster, run_consumer, run_timeout_s, unique_group
from bench.support import log, python_argv
from flink_jobs.runtime.affinity import usable_cpus


def tracking_args(
    ctx: Context,
    ds: Dataset,
    parallelism: int,
    cpus: str = "",
    store: CheckpointStore | None = None,
) -> list[str]:
    """The job's flags as deployed (`fleetpulse up` passes a checkpoint directory too:
    without one Flink keeps checkpoints in the JobManager's memory, 5 MiB at most, which
    10,000 trucks' state already exceeds, and the job then restarts over and over). The
    checkpoints go to a folder of the run's own in ``store``, by default on local disk."""
    t = ctx.stack.topics
    group = unique_group("bench-tracking")
    store = store or local_store(ctx.workdir / "checkpoints")
    return [
        "--bootstrap",
        ctx.stack.bootstrap,
        "--redis-url",
        ctx.stack.redis_url,
        "--gps-topic",
        ds.topic,
        "--alerts-topic",
        t.alerts,
        "--geofence-topic",
        t.geofence_events,
        "--dlq-topic",
        t.dlq,
        "--group-id",
        group,
        "--checkpoint-dir",
        store.location(group),
        "--bounded",
        "--parallelism",
        str(parallelism),
        *(["--cpus", cpus] if cpus else []),
    ]


def tracking_argv(
    ctx: Context,
    ds: Dataset,
    parallelism: int,
    cpus: str = "",
    store: CheckpointStore | None = None,
) -> list[str]:
    """The job run embedded (its own MiniCluster), as `fleetpulse up` runs it."""
    return python_argv("flink_jobs.tracking.job", *tracking_args(ctx, ds, parallelism, cpus, store))


def peer_args(ctx: Context, ds: Dataset, peer: str) -> list[str]:
    """The flags both peers (:mod:`bench.peers`) take: services, topics, a fresh group."""
    t = ctx.stack.topics
    return [
        "--bootstrap",
        ctx.stack.bootstrap,
        "--redis-url",
        ctx.stack.redis_url,
        "--topic",
        ds.topic,
        "--alerts-topic",
        t.alerts,
        "--geofence-topic",
        t.geofence_events,
        "--group-id",
        unique_group(f"bench-{peer}"),
    ]


def plain_argv(ctx: Context, ds: Dataset) -> list[str]:
    return python_argv(
        "bench.peers.plain",
        *peer_args(ctx, ds, "plain"),
        "--dlq-topic",
        ctx.stack.topics.dlq,
        "--bounded",
    )


def quix_argv(ctx: Context, ds: Dataset) -> list[str]:
    return python_argv(
        "bench.peers.quix",
        *peer_args(ctx, ds, "quix"),
        "--state-dir",
        str(ctx.workdir / unique_group("quix-state")),
        python=ctx.quix_python,
    )


def fleetpulse_run(
    ctx: Context, ds: Dataset, parallelism: int, cap_s: float | None = None, cpus: str = ""
) -> dict[str, Any]:
    """The job embedded; with ``cpus`` (``--cpus``) its process and JVM pinned to them."""
    name = f"fleetpulse p={parallelism}" + (f", pinned to CPU {cpus}" if cpus else "")
    log(f"throughput: {name} on {ds.topic}")
    row = run_consumer(
        ctx.stack,
        ds,
        name,
        tracking_argv(ctx, ds, parallelism, cpus),
        ctx.workdir / "throughput",
        run_timeout_s(ds),
        cap_s=cap_s,
    )
    row.setdefault("note", "tracking job, embedded MiniCluster, thread mode, bounded")
    row.update(parallelism=parallelism, taskmanagers=0, pinned=bool(cpus))
    return row


def cluster_run_name(taskmanagers: int, pin: bool, store: CheckpointStore | None) -> str:
    """A cluster row's name; it says so when the checkpoints are not on local disk."""
    return (
        f"fleetpulse p={taskmanagers}, {taskmanagers} TaskManagers"
        + (", one CPU each" if pin else "")
        + (", checkpoints on S3" if store is not None and store.kind == "s3" else "")
    )


def cluster_run(
    ctx: Context,
    ds: Dataset,
    taskmanagers: int,
    pin: bool = False,
    store: CheckpointStore | None = None,
) -> dict[str, Any]:
    """The job submitted with `flink run -py` to a standalone cluster of ``taskmanagers``
    TaskManagers with one slot each, at that parallelism (:func:`bench.runs.on_cluster`).
    ``pin``: each on a CPU of its own (`fleetpulse cluster start --pin-taskmanagers`).
    ``store``: where its checkpoints go (local disk by default)."""
    store = store or local_store(ctx.workdir / "checkpoints")
    name = cluster_run_name(taskmanagers, pin, store)
    log(f"throughput: {name} on {ds.topic}")
    try:
        row = on_cluster(
            ctx.stack,
            ds,
            name,
            tracking_argv(ctx, ds, taskmanagers, store=store),
            ctx.workdir / "throughput",
            taskmanagers,
            pin=pin,
            store=store,
        )
    except Exception as exc:  # noqa: BLE001 - a failed run is a row, the report goes on
        row = {"name": name, "status": "failed", "reason": str(exc)[-1500:]}
    row.setdefault(
        "note",
        "tracking job, `flink run -py` on a standalone cluster from the "
        "wheel, one slot per TaskManager, thread mode, bounded; CPU and "
        "memory include the JobManager and TaskManagers",
    )
    row["note"] += "; " + describe(store, row.get("checkpoints"))
    row.update(parallelism=taskmanagers, taskmanagers=taskmanagers, pinned=pin)
    return row


def cluster_runs(
    ctx: Context, ds: Dataset
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Every cluster run (``--cluster-taskmanagers``), checkpointing to the store
    ``--cluster-checkpoints`` names (its S3 server up for their duration only), and the
    (free, pinned) pairs among them."""
    runs: list[dict[str, Any]] = []
    pinned: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if not ctx.sizes.cluster_taskmanagers:
        return runs, pinned
    kind = ctx.sizes.cluster_checkpoints
    try:
        with open_store(kind, ctx.workdir / "throughput") as (store, _):
            for tms in ctx.sizes.cluster_taskmanagers:
                runs.append(cluster_run(ctx, ds, tms, store=store))
                if ctx.sizes.pinned_runs:
                    runs.append(cluster_run(ctx, ds, tms, pin=True, store=store))
                    pinned.append((runs[-2], runs[-1]))
    except Exception as exc:  # noqa: BLE001 - no store: the cluster rows say why
        if runs:  # its server did not stop cleanly: the runs stand
            log(f"throughput: checkpoint store: {exc!r}")
            return runs, pinned
        for tms in ctx.sizes.cluster_taskmanagers:
            runs.append(
                {
                    "name": cluster_run_name(tms, False, None)
                    + (", checkpoints on S3" if kind == "s3" else ""),
                    "status": "failed",
                    "reason": f"checkpoint store: {exc}"[-1500:],
                    "parallelism": tms,
                    "taskmanagers": tms,
                    "pinned": False,
                }
            )
    return runs, pinned


def run_peers(ctx: Context, ds: Dataset) -> tuple[dict[str, Any], dict[str, Any]]:
    log("throughput: plain Python consumer")
    plain = run_consumer(
        ctx.stack,
        ds,
        "plain Python",
        plain_argv(ctx, ds),
        ctx.workdir / "throughput",
        run_timeout_s(ds),
    )
    plain["note"] = "confluent-kafka consumer, same udfs + Redis script, 1 process"
    if ctx.quix_python:
        log("throughput: Quix Streams")
        quix = run_consumer(
            ctx.stack,
            ds,
            "Quix Streams",
            quix_argv(ctx, ds),
            ctx.workdir / "throughput",
            run_timeout_s(ds),
        )
        quix["note"] = "quixstreams Application, RocksDB state + changelog, 1 process"
    else:
        quix = {
            "name": "Quix Streams",
            "status": NOT_MEASURED,
            "reason": "quixstreams is not importable by any interpreter given (--quix-python)",
        }
    return plain, quix


def run(ctx: Context) -> dict[str, Any]:
    ds = ctx.dataset(ctx.sizes.trucks)
    runs: list[dict[str, Any]] = []
    pinned: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (free, pinned) pairs
    for p in ctx.sizes.parallelisms:
        runs.append(fleetpulse_run(ctx, ds, p))
        if ctx.sizes.pinned_runs and p == 1:
            runs.append(fleetpulse_run(ctx, ds, p, cpus=str(usable_cpus()[0])))
            pinned.append((runs[-2], runs[-1]))
    more, more_pinned = cluster_runs(ctx, ds)
    runs += more
    pinned += more_pinned
    if ctx.sizes.peers:
        plain, quix = run_peers(ctx, ds)
    else:
        skipped = {"status": NOT_MEASURED, "reason": "--no-peers"}
        plain, quix = {"name": "plain Python", **skipped}, {"name": "Quix Streams", **skipped}
    runs += [plain, quix]
    ours = [r for r in runs if r["name"].startswith("fleetpulse") and r["status"] == "ok"]
    best = max(ours, key=lambda r: r["rate"]) if ours else None
    # The live run starts the job the way `fleetpulse up` does (embedded, not pinned): the
    # parallelism of the fastest such run.
    embedded = [r for r in ours if not r["taskmanagers"] and not r["pinned"]]
    best_embedded = max(embedded, key=lambda r: r["rate"]) if embedded else None
    ctx.shared["best_parallelism"] = best_embedded["parallelism"] if best_embedded else 1
    ctx.shared["best_throughput_row"] = best_embedded
    ctx.shared["fleetpulse_rates"] = {r["name"]: r["rate"] for r in ours}
    ratios = {}
    for peer in (plain, quix):
        if best and peer.get("status") == "ok":
            ratios[peer["name"]] = ratio(best["rate"], peer["rate"])
    pin_ratios = {
        b["name"]: ratio(b["rate"], a["rate"])
        for a, b in pinned
        if a["status"] == "ok" and b["status"] == "ok"
    }
    return {
        "status": "ok" if ours else NOT_MEASURED,
        "reason": ""
        if ours
        else "no fleetpulse run completed: "
        + "; ".join(str(r.get("reason", ""))[:300] for r in runs[:2]),
        "pings": ds.pings,
        "trucks": ds.trucks,
        "topic": ds.topic,
        "partitions": ds.partitions,
        "bytes_per_ping": round(ds.bytes_per_ping),
        "runs": runs,
        "best": best,
        "ratios": ratios,
        "pin_ratios": pin_ratios,
        "notes": [
            "Start-up (JVM, MiniCluster, Python workers, Kafka group join) is not "
            "in the rate; it is the start-up column.",
            "CPU µs/ping: user+system CPU of the consumer's whole process tree "
            "(JVM included, sampled from /proc every 0.5 s) between its first and "
            "last position, divided by the pings (`cpu_s_whole_run` in the JSON "
            "includes start-up).",
            "Kafka and Redis share the same 2 cores with the consumer under test.",
            "Pinned rows: the same job with its JVM pinned (the embedded one with "
            "`--cpus`, the cluster's TaskManagers to a CPU each with `fleetpulse "
            "cluster start --pin-taskmanagers`), run right after the unpinned one; "
            "`pin_ratios` is pinned rate / unpinned rate. A TaskManager's Python "
            "operators share one interpreter lock, and handing it between threads "
            "on different cores costs context switches across cores "
            "(flink_jobs/runtime/affinity.py).",
            "Durability differs: the job checkpoints its state (every 10 s; the "
            "embedded runs to local disk, the cluster runs where their note says, "
            "`--cluster-checkpoints`), Quix Streams keeps it in RocksDB with a "
            "changelog topic, the plain consumer keeps it in a dict and loses it on "
            "a crash.",
        ],
    }
