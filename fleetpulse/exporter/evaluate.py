"""Thresholds over the readings: what makes `fleetpulse status` exit non-zero.

Pure, over :class:`~fleetpulse.exporter.readings.Readings`. The exporter itself judges nothing
(its alert rules do, in Prometheus); `status` uses these for a one-shot verdict with the same
readings. A reading that could not be taken is shown as unknown and is no problem here: a
component that is down is `status`'s other check.

Restarts: a job fails the check when Flink's ``numRestarts`` (restarts since the job was
submitted, or since its embedded MiniCluster started) is above ``max_restarts``, 0 by default.
That needs no memory between two runs of `status`, and a job that restarted once stays flagged
until it is resubmitted or the threshold is raised: a restart always deserves a look.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from fleetpulse.exporter import ExporterError
from fleetpulse.exporter.readings import JobReading, LagReading, Readings

DEFAULT_MAX_LAG_RECORDS = 100_000
DEFAULT_MAX_CHECKPOINT_AGE_S = 300.0
DEFAULT_MAX_RESTARTS = 0


@dataclass(frozen=True)
class Thresholds:
    # records a group may be behind on one topic (offsets are committed at each checkpoint, so
    # a healthy job is up to one checkpoint interval of input behind)
    max_lag_records: int = DEFAULT_MAX_LAG_RECORDS
    # seconds since a job's last completed checkpoint (fleetpulse up checkpoints every 10 s)
    max_checkpoint_age_s: float = DEFAULT_MAX_CHECKPOINT_AGE_S
    max_restarts: int = DEFAULT_MAX_RESTARTS

    def validate(self) -> Thresholds:
        if self.max_lag_records < 0:
            raise ExporterError(f"--max-lag must be 0 or more, got {self.max_lag_records}")
        if not self.max_checkpoint_age_s > 0:
            raise ExporterError(
                f"--max-checkpoint-age must be more than 0 s, got {self.max_checkpoint_age_s}"
            )
        if self.max_restarts < 0:
            raise ExporterError(f"--max-restarts must be 0 or more, got {self.max_restarts}")
        return self


@dataclass(frozen=True)
class Problem:
    subject: str  # a Flink job name or a consumer group
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


def job_problems(job: JobReading, t: Thresholds) -> list[Problem]:
    if not job.up:
        return [Problem(job.name, f"job is {job.state}, not RUNNING")]
    found = []
    if job.restarts is not None and job.restarts > t.max_restarts:
        found.append(
            Problem(
                job.name,
                f"restarted {job.restarts} time(s) since submission "
                f"(more than --max-restarts {t.max_restarts})",
            )
        )
    if job.checkpoint_age_s is not None and job.checkpoint_age_s > t.max_checkpoint_age_s:
        found.append(
            Problem(
                job.name,
                f"last completed checkpoint {job.checkpoint_age_s:.0f} s ago "
                f"(more than --max-checkpoint-age {t.max_checkpoint_age_s:g} s)",
            )
        )
    return found


def lag_problems(lag: LagReading, t: Thresholds) -> list[Problem]:
    if lag.lag <= t.max_lag_records:
        return []
    return [
        Problem(
            lag.group,
            f"{lag.lag} records behind on {lag.topic} (more than --max-lag {t.max_lag_records})",
        )
    ]


def evaluate(
    readings: Readings,
    t: Thresholds,
    jobs: Collection[str] | None = None,
    groups: Collection[str] | None = None,
) -> list[Problem]:
    """The problems in ``readings``: of the Flink jobs named in ``jobs`` (None: all read; a
    named job missing from an answering REST API is a problem) and of the consumer groups in
    ``groups`` (None: all read)."""
    found: list[Problem] = []
    if readings.jobs is not None:
        seen = {j.name for j in readings.jobs}
        for job in readings.jobs:
            if jobs is None or job.name in jobs:
                found += job_problems(job, t)
        found += [
            Problem(n, "no such job at the Flink REST API") for n in jobs or () if n not in seen
        ]
    for lag in readings.lags or ():
        if groups is None or lag.group in groups:
            found += lag_problems(lag, t)
    return found


def describe_age(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds:.0f} s ago"


def describe_job(job: JobReading | None, lags: Sequence[LagReading]) -> str:
    """`status`' line of detail for one job: restarts, checkpoint age, lag per topic."""
    lag_text = ", ".join(f"{x.topic} {x.lag}" for x in lags) or "unknown"
    if job is None:
        return f"restarts unknown, last checkpoint unknown, lag {lag_text}"
    restarts = "unknown" if job.restarts is None else str(job.restarts)
    return (
        f"restarts {restarts}, last checkpoint {describe_age(job.checkpoint_age_s)}, lag {lag_text}"
    )
