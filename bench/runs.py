"""One timed consumption of a preloaded dataset: the tracking job or a peer, started as a child
under ``/usr/bin/time -v``, Redis polled until every truck's last position is readable.

Timing: ``t_first`` is when the first position becomes readable in Redis (so JVM and Python
start-up are reported apart, as ``startup_s``), ``t_end`` when the last one is (found by
polling the trucks whose last ping ends a partition, then confirmed for every truck). The
rate is ``pings / (t_end - t_first)``. The same clock and criterion serve every consumer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.checkpoint_store import CheckpointStore, checkpoint_stats
from bench.data import Dataset
from bench.support import Bar, BenchError, MemorySampler, Stack, cpu_seconds, log, start_child

POLL_S = 0.1


def _positions_added(r: Any) -> int:
    try:
        info = r.xinfo_stream("stream:positions")
    except Exception:  # noqa: BLE001 - no stream yet
        return 0
    return int(info.get("entries-added", info.get("length", 0)))


def _missing(r: Any, expected: dict[str, int], chunk: int = 5000) -> dict[str, int]:
    """The trucks whose readable ``ts_ms`` is not yet their last ping's."""
    items = list(expected.items())
    missing: dict[str, int] = {}
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        pipe = r.pipeline(transaction=False)
        for tid, _ in part:
            pipe.hget(f"truck:{tid}", "ts_ms")
        for (tid, ts), got in zip(part, pipe.execute(), strict=True):
            if got is None or int(got) < ts:
                missing[tid] = ts
    return missing


def run_consumer(
    stack: Stack,
    ds: Dataset,
    name: str,
    argv: list[str],
    workdir: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
    done_key: str | None = None,
    cap_s: float | None = None,
    also_measured: dict[str, int] | None = None,
    on_progress: Callable[[float, int], None] | None = None,
) -> dict[str, Any]:
    """Start ``argv`` on an empty Redis and time it through ``ds``; a result row.

    With ``done_key`` the consumer counts its records in that Redis key instead of writing
    positions (the stage jobs of :mod:`bench.jobs.stages`); done when it reaches the pings.
    With ``cap_s`` the run is stopped that long after its first write (a time box) and the
    row is ``partial``: its rate is what was processed by then (one position per ping, the
    input being clean), over that time. ``also_measured`` names processes (by pid) whose
    trees do the work besides the child, such as a Flink cluster's TaskManagers under a
    `flink run` client: their CPU and memory count as the consumer's. ``on_progress`` is
    called at every poll with the fraction of the pings processed and the child's pid (to
    observe the run in its steady state, as :class:`bench.threads.ThreadWindow` does)."""
    stack.flush_redis()
    r = stack.redis()
    redis_pid = stack.procs["redis"].pid
    row: dict[str, Any] = {"name": name, "pings": ds.pings, "trucks": ds.trucks, "status": "ok"}
    child = start_child(name.replace(" ", "_").replace("=", ""), argv, workdir, timed=True, env=env)
    t_start = time.monotonic()
    bar = Bar(ds.pings, name, "ping")
    sampler = MemorySampler(0.5)
    sampler.watch("child", child.popen.pid)
    measured = ["child", *(also_measured or {})]
    for extra, pid in (also_measured or {}).items():
        sampler.watch(extra, pid)

    def cpu_now() -> float:
        return sum(sampler.cpu_s(n) for n in measured)

    def progress() -> int:
        return int(r.get(done_key) or 0) if done_key else _positions_added(r)

    processed = ds.pings
    try:
        with sampler:
            deadline = t_start + timeout_s
            while True:
                if r.exists(done_key or "stream:positions"):
                    t_first = time.monotonic()
                    break
                if not child.alive():
                    raise BenchError(f"{name} exited before writing anything:\n{child.log_tail()}")
                if time.monotonic() > deadline:
                    raise BenchError(f"{name}: nothing written to Redis in {timeout_s:.0f}s")
                time.sleep(0.02)
            sampler.sample()
            cpu_first, redis_cpu_first = cpu_now(), cpu_seconds(redis_pid)
            tail = dict(ds.tail)
            while True:
                now = time.monotonic()
                if now > deadline:
                    raise BenchError(
                        f"{name}: not done after {timeout_s:.0f}s "
                        f"({progress():,} records processed)"
                    )
                added = progress()
                if on_progress is not None:
                    on_progress(added / ds.pings, child.popen.pid)
                bar.update_to(added, f"{added / max(1e-9, now - t_first):,.0f}/s")
                if cap_s is not None and now - t_first >= cap_s:
                    t_end, processed = now, min(added, ds.pings)
                    row["status"] = "partial"
                    row["note"] = (
                        f"time box: stopped {cap_s:.0f} s after its first write, "
                        f"{processed:,} of {ds.pings:,} pings processed"
                    )
                    break
                if done_key:
                    if added >= ds.pings:
                        t_end = now
                        break
                    if not child.alive():
                        raise BenchError(
                            f"{name} exited at {added} of {ds.pings}:\n{child.log_tail()}"
                        )
                elif added >= 0.95 * ds.pings or not child.alive():
                    tail = _missing(r, tail)
                    if not tail:
                        t_probe = time.monotonic()
                        missing = _missing(r, ds.last_ts)
                        if not missing:
                            t_end = t_probe
                            break
                        tail = missing  # rare: keep polling the stragglers
                    elif not child.alive():
                        raise BenchError(
                            f"{name} exited with {len(tail)} trucks missing:\n{child.log_tail()}"
                        )
                time.sleep(POLL_S)
            sampler.sample()
            cpu_window = cpu_now() - cpu_first
            redis_cpu = cpu_seconds(redis_pid) - redis_cpu_first
            bar.update_to(processed)
            if row["status"] == "ok":
                # bounded consumers end by themselves; give them a while, then stop them
                try:
                    child.popen.wait(timeout=90)
                except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
                    log(f"{name}: still running after its input; stopping it")
    except BenchError as exc:
        r.close()
        return {**row, "status": "failed", "reason": str(exc)[-1500:]}
    finally:
        child.stop()
        bar.close()
    tv = child.time_v()
    seconds = t_end - t_first
    row.update(
        {
            "pings_processed": processed,
            "rate": round(processed / seconds),
            "seconds": round(seconds, 2),
            "startup_s": round(t_first - t_start, 2),
            "peak_rss_mib": round(tv["max_rss_kib"] / 1024, 1) if "max_rss_kib" in tv else None,
            "tree_peak_rss_mib": round(sum(sampler.peak_mib(n) for n in measured), 1),
            "cpu_s": round(cpu_window, 1),
            "cpu_us_per_ping": round(cpu_window * 1e6 / max(1, processed), 1),
            "cpu_s_whole_run": round(cpu_now(), 1),
            "redis_cpu_s": round(redis_cpu, 1),
            "redis_used_mib": round(int(r.info("memory")["used_memory"]) / 2**20, 1),
            "positions_written": _positions_added(r),
            "exit_code": child.popen.returncode,
        }
    )
    r.close()
    return row


def unique_group(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_timeout_s(ds: Dataset) -> float:
    """How long a consumer may take over ``ds`` before its run counts as failed."""
    return max(600.0, ds.pings / 500)


def on_cluster(
    stack: Stack,
    ds: Dataset,
    name: str,
    argv: list[str],
    work: Path,
    taskmanagers: int,
    done_key: str | None = None,
    root: Path | None = None,
    env: dict[str, str] | None = None,
    pin: bool = True,
    store: CheckpointStore | None = None,
) -> dict[str, Any]:
    """One timed run of a job (``argv`` as for an embedded run, ``python -m module ...``)
    submitted to a fresh standalone cluster of ``taskmanagers`` TaskManagers (one slot each,
    each on a CPU of its own with ``pin``), at that parallelism: one Python interpreter (one
    interpreter lock) per parallel instance, where a MiniCluster shares one. ``argv[0]``'s
    interpreter runs the job's Python; ``root`` (this checkout by default) holds its code, and
    ``env`` is added to the client's environment (another revision's, for :mod:`bench.compare`).
    CPU and memory include the JobManager and the TaskManagers. With ``store`` the cluster
    can write its checkpoints there (its filesystem plugins and ``s3.*`` keys; ``argv``'s
    ``--checkpoint-dir`` names the place), and the row's ``checkpoints`` says how many
    completed and where the last one went, from the cluster's REST API."""
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
        pin_taskmanagers=pin,
        python=python,
        project_root=root,
        extra_config=dict(store.cluster_config) if store else {},
        plugins_dirs=list(store.plugins_dirs) if store else [],
    )
    try:
        cluster.start()
        submit = submit_argv(
            cluster.rest_url, module, args, detached=False, python=python, root=root
        )
        row = run_consumer(
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
        if store is not None:
            row["checkpoints"] = {"store": store.kind, **checkpoint_stats(cluster.rest_url)}
        return row
    finally:
        cluster.stop()


def timed_run(
    stack: Stack,
    ds: Dataset,
    name: str,
    argv: list[str],
    work: Path,
    taskmanagers: int,
    done_key: str | None = None,
    root: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``argv`` timed embedded, or with ``taskmanagers`` on a fresh pinned cluster
    (:func:`on_cluster`): the choice every ``--cluster N`` option makes."""
    if taskmanagers:
        return on_cluster(stack, ds, name, argv, work, taskmanagers, done_key, root, env)
    return run_consumer(stack, ds, name, argv, work, run_timeout_s(ds), env=env, done_key=done_key)
