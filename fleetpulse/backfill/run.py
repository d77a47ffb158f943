"""Running a backfill: the job's own module, as a process of its own, bounded by timestamps,
writing only staging, with a progress bar fed by the offsets it commits at checkpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetpulse.backfill import BackfillError
from fleetpulse.backfill.ranges import OffsetRange, Partition
from udfs.contract import TopicNames
from udfs.kafka_properties import KafkaProperties

JOBS = ("tracking", "delay")
CHECKPOINT_INTERVAL_MS = 2000  # progress is read from the offsets committed at checkpoints


@dataclass(frozen=True)
class BackfillPlan:
    """One backfill: the job, its range, and where it writes (staging only)."""

    job: str
    start_ms: int
    stop_ms: int
    bootstrap: str
    staging_redis_url: str
    live: TopicNames
    staging: TopicNames
    group_id: str
    extra: tuple[str, ...] = ()

    def input_topics(self) -> list[str]:
        return [self.live.scans, self.live.gps] if self.job == "delay" else [self.live.gps]

    def argv(self) -> list[str]:
        """The job's command line; secrets (Redis URL, Kafka properties) go by environment."""
        topics = ["--gps-topic", self.live.gps]
        if self.job == "delay":
            topics += ["--scans-topic", self.live.scans]
        else:
            topics += ["--geofence-topic", self.staging.geofence_events]
        return [
            sys.executable,
            "-m",
            f"flink_jobs.{self.job}.job",
            "--bootstrap",
            self.bootstrap,
            "--group-id",
            self.group_id,
            "--start-timestamp-ms",
            str(self.start_ms),
            "--stop-timestamp-ms",
            str(self.stop_ms),
            "--alerts-topic",
            self.staging.alerts,
            "--dlq-topic",
            self.staging.dlq,
            *topics,
            "--checkpoint-interval-ms",
            str(CHECKPOINT_INTERVAL_MS),
            "--restart-attempts",
            "0",
            *self.extra,
        ]

    def environment(self, props: KafkaProperties) -> dict[str, str]:
        """This process's environment without any job setting of the live jobs' (a live
        FLEETPULSE_RESTORE or FLEETPULSE_CHECKPOINT_DIR must not reach the backfill), plus
        the staging Redis URL and the Kafka properties."""
        from fleetpulse.services.flink import flink_env

        env = {
            k: v
            for k, v in flink_env().items()
            if not k.startswith("FLEETPULSE_") or k == "FLEETPULSE_JVM_DIR"
        }
        env["FLEETPULSE_REDIS_URL"] = self.staging_redis_url
        if props.values:
            env["FLEETPULSE_KAFKA_PROPERTY"] = "\n".join(
                f"{k}={v}" for k, v in props.values.items()
            )
        return env


def staging_topics(live: TopicNames, suffix: str) -> TopicNames:
    """The backfill's outputs: each live output topic's name plus ``suffix``."""
    if not suffix:
        raise BackfillError("the staging topic suffix must not be empty (alerts would page)")
    return TopicNames(
        gps=live.gps,
        scans=live.scans,
        alerts=live.alerts + suffix,
        geofence_events=live.geofence_events + suffix,
        dlq=live.dlq + suffix,
    )


def run_job(
    plan: BackfillPlan,
    props: KafkaProperties,
    log_path: Path,
    span: OffsetRange,
    progress: Callable[[int, float], None],
    position: Callable[[], dict[Partition, int]],
    poll_s: float = 1.0,
) -> float:
    """Run the job to its end; ``progress(done, elapsed_s)`` after each look at the committed
    offsets. Returns the run's wall time; raises :class:`BackfillError` if the job fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            plan.argv(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=plan.environment(props),
            start_new_session=True,
        )
    try:
        while proc.poll() is None:
            time.sleep(poll_s)
            try:
                progress(span.done(position()), time.monotonic() - started)
            except Exception:  # noqa: BLE001 - progress is best effort; the job decides
                continue
    except BaseException:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise BackfillError(f"the {plan.job} job failed (exit {proc.returncode}); see {log_path}")
    progress(span.total, elapsed)
    return elapsed


def pass_through(args: Sequence[str]) -> tuple[str, ...]:
    """Job flags given after ``--``; the ones the backfill sets itself are refused."""
    own = {
        "--bootstrap",
        "--group-id",
        "--start-timestamp-ms",
        "--stop-timestamp-ms",
        "--alerts-topic",
        "--dlq-topic",
        "--geofence-topic",
        "--redis-url",
        "--restore",
        "--bounded",
    }
    for arg in args:
        if arg.split("=", 1)[0] in own:
            raise BackfillError(f"{arg.split('=', 1)[0]} is set by the backfill itself")
    return tuple(args)
