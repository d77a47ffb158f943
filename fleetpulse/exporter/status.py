"""`fleetpulse status`' view of the jobs: the exporter's readings taken once, from what the
running `fleetpulse up` wrote to its state file, and judged by :mod:`.evaluate`.

The state file names (since this version) Kafka, Redis, and each job's Flink job name, REST API
and consumer group; a state file of an older `up` has none of that, and `status` then shows only
whether each process is up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetpulse.exporter.evaluate import Problem, Thresholds, describe_age, describe_job, evaluate
from fleetpulse.exporter.readings import Readings


@dataclass(frozen=True)
class WatchedJob:
    """A job as `up` recorded it: its component name, Flink job name, REST API and group."""

    component: str
    flink_job: str
    rest_url: str
    group: str


def watched_jobs(state: Mapping[str, Any]) -> list[WatchedJob]:
    out = []
    for j in state.get("jobs", []):
        try:
            out.append(WatchedJob(j["component"], j["flink_job"], j["rest_url"], j["group"]))
        except (KeyError, TypeError):
            continue  # a state file of another version: no readings for that one
    return out


def watched_groups(state: Mapping[str, Any]) -> dict[str, str]:
    """Component -> consumer group, of every consumer `up` started (jobs and dispatcher)."""
    groups = state.get("groups", {})
    return {str(k): str(v) for k, v in groups.items()} if isinstance(groups, dict) else {}


def take_readings(state: Mapping[str, Any], timeout_s: float) -> Readings | None:
    """One reading of what the state file names; None if it names nothing to read."""
    from fleetpulse.exporter.sources import FlinkJobs, KafkaLag, Reader, read_redis, redis_client

    bootstrap, redis_url = state.get("kafka_bootstrap"), state.get("redis_url")
    if not bootstrap or not redis_url:
        return None
    groups = sorted(set(watched_groups(state).values()))
    urls = sorted({j.rest_url for j in watched_jobs(state)})
    client = redis_client(str(redis_url), timeout_s)
    lag = KafkaLag(str(bootstrap), timeout_s)
    reader = Reader(
        timeout_s,
        redis=lambda: read_redis(client, ()),
        kafka=(lambda: lag.read(groups)) if groups else None,
        flink=[FlinkJobs(url, timeout_s) for url in urls],
    )
    try:
        return reader.read()
    finally:
        reader.close()
        client.close()


@dataclass(frozen=True)
class Report:
    details: dict[str, str]  # component -> its line of detail
    extra: list[str]  # lines about no component (jobs on a cluster, positions, errors)
    problems: list[Problem]


def report(state: Mapping[str, Any], readings: Readings, t: Thresholds) -> Report:
    """What `status` prints below the component lines, and the problems it exits 2 for."""
    jobs = watched_jobs(state)
    groups = watched_groups(state)
    by_name = {j.name: j for j in readings.jobs or ()}
    lags = readings.lags or ()
    details: dict[str, str] = {}
    extra: list[str] = []
    components = set(state.get("components", {}))
    for job in jobs:
        line = describe_job(
            by_name.get(job.flink_job) if readings.jobs is not None else None,
            [x for x in lags if x.group == job.group],
        )
        if job.component in components:
            details[job.component] = line
        else:  # submitted to a cluster: no process of ours
            state_text = by_name[job.flink_job].state if job.flink_job in by_name else "unknown"
            extra.append(f"{job.component:<18} {state_text} at {job.rest_url}: {line}")
    job_groups = {j.group for j in jobs}
    for component, group in groups.items():
        if group in job_groups or component not in components:
            continue
        own = [x for x in lags if x.group == group]
        text = ", ".join(f"{x.topic} {x.lag}" for x in own) or "unknown"
        details[component] = f"lag {text}"
    age = readings.redis.position_age_s if readings.redis is not None else None
    extra.append(f"{'positions':<18} newest written {describe_age(age)}")
    for source, error in sorted(readings.errors.items()):
        extra.append(f"{'(unread)':<18} {source}: {error}")
    # A job whose REST API did not answer is unknown, not missing: an embedded one shows as a
    # component DOWN already; one on a cluster is a problem of its own.
    unread = {k.split(" ", 1)[1] for k in readings.errors if k.startswith("flink ")}
    problems = evaluate(
        readings,
        t,
        jobs=[j.flink_job for j in jobs if j.rest_url not in unread],
        groups=sorted(set(groups.values())),
    )
    problems += [
        Problem(j.flink_job, f"the Flink REST API at {j.rest_url} did not answer")
        for j in jobs
        if j.rest_url in unread and j.component not in components
    ]
    return Report(details, extra, problems)


def exit_code(any_down: bool, problems: Sequence[Problem]) -> int:
    """0 all well; 1 a component is down (or still starting); 2 all up, but a threshold is
    passed. (3, not running at all, is decided before any reading.)"""
    if any_down:
        return 1
    return 2 if problems else 0
