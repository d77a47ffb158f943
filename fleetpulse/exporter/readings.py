"""The readings, and how each is computed from what Redis, Kafka and Flink answered.

Pure: the callers (:mod:`.sources`) do the I/O and hand the raw answers in, so every rule here
(what a lag is, how old a position is, which Flink job a name stands for) is unit-tested and
shared by the exporter and `fleetpulse status`. The amount read never depends on the number of
trucks or shipments: a fixed set of region hashes, one ZCOUNT per severity, the newest stream
entry, the committed offsets of a few groups and the jobs of a few Flink clusters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The regions of docs/contract.md: the four US Census regions and OTHER. A fixed list (a flag
# can change it) because finding `region:*` keys would scan the whole keyspace.
DEFAULT_REGIONS: tuple[str, ...] = ("NORTHEAST", "MIDWEST", "SOUTH", "WEST", "OTHER")
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)  # delay severity levels of docs/contract.md
# region hash field -> truck state label of fleetpulse_region_trucks
TRUCK_STATE_FIELDS: dict[str, str] = {
    "active": "active_trucks",
    "moving": "moving_trucks",
    "stopped": "stopped_trucks",
}
RUNNING = "RUNNING"
UNREACHABLE = "UNREACHABLE"  # a job seen before at a Flink REST API that no longer answers


@dataclass(frozen=True)
class RegionReading:
    """One ``region:{REGION}`` hash; a field that is missing or not a number is None."""

    region: str
    trucks: Mapping[str, float | None]  # state (active|moving|stopped) -> trucks
    shipments: float | None
    delay_hours: float | None


@dataclass(frozen=True)
class RedisReading:
    regions: tuple[RegionReading, ...]  # only regions whose hash exists
    delayed: Mapping[int, int]  # severity -> members of `delays` with that score
    # seconds between the newest `stream:positions` entry's write and Redis's clock now;
    # None when the stream is empty
    position_age_s: float | None


@dataclass(frozen=True)
class LagReading:
    group: str
    topic: str
    lag: int  # records: sum over the group's committed partitions of end - committed


@dataclass(frozen=True)
class JobReading:
    """One Flink job (by name) at one REST API. ``restarts`` and ``checkpoint_age_s`` are known
    only for a running job whose details answered."""

    name: str
    url: str
    state: str
    restarts: int | None = None
    # seconds since the last completed checkpoint, or since the job started when none has
    # completed yet (so a job that never checkpoints grows old too)
    checkpoint_age_s: float | None = None

    @property
    def up(self) -> bool:
        return self.state == RUNNING


@dataclass(frozen=True)
class Readings:
    """One reading of every source; a source that failed is None here and named in
    ``errors`` (source -> what went wrong)."""

    redis: RedisReading | None = None
    lags: tuple[LagReading, ...] | None = None
    jobs: tuple[JobReading, ...] | None = None  # None: no Flink REST API to read
    errors: Mapping[str, str] = field(default_factory=dict)


# -- Redis -------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def number(value: Any) -> float | None:
    """A Redis field as a number; None for a missing or non-numeric one."""
    if value is None:
        return None
    try:
        result = float(_text(value))
    except ValueError:
        return None
    return result if result == result and abs(result) != float("inf") else None


def region_reading(region: str, fields: Mapping[Any, Any]) -> RegionReading | None:
    """The reading of one region hash (HGETALL's answer, bytes or str); None if it is empty."""
    if not fields:
        return None
    values = {_text(k): v for k, v in fields.items()}
    return RegionReading(
        region=region,
        trucks={state: number(values.get(f)) for state, f in TRUCK_STATE_FIELDS.items()},
        shipments=number(values.get("total_shipments")),
        delay_hours=number(values.get("total_delay_hours")),
    )


def stream_id_ms(entry_id: Any) -> int | None:
    """The millisecond part of a stream entry id (``1764099641123-0``): when Redis wrote it."""
    try:
        return int(_text(entry_id).split("-", 1)[0])
    except ValueError:
        return None


def position_age_s(newest: Sequence[Any], redis_time: Sequence[int]) -> float | None:
    """Age of the newest ``stream:positions`` entry (XREVRANGE ... COUNT 1's answer) by Redis's
    own clock (TIME's answer: seconds, microseconds), so no clock skew enters; an entry id is
    the Redis time of its write, so this is how long ago the tracking job last wrote a position.
    """
    if not newest:
        return None
    written_ms = stream_id_ms(newest[0][0])
    if written_ms is None:
        return None
    now_ms = int(redis_time[0]) * 1000 + int(redis_time[1]) // 1000
    return max(now_ms - written_ms, 0) / 1000.0


def redis_reading(
    regions: Sequence[str],
    hashes: Sequence[Mapping[Any, Any]],
    counts: Sequence[int],
    newest: Sequence[Any],
    redis_time: Sequence[int],
) -> RedisReading:
    """Everything read from Redis in one pipeline: the region hashes (in ``regions``' order),
    ZCOUNT per severity (in :data:`SEVERITIES`' order), the newest stream entry and TIME."""
    read = (region_reading(r, h) for r, h in zip(regions, hashes, strict=True))
    return RedisReading(
        regions=tuple(r for r in read if r is not None),
        delayed={s: int(c) for s, c in zip(SEVERITIES, counts, strict=True)},
        position_age_s=position_age_s(newest, redis_time),
    )


# -- Kafka -------------------------------------------------------------------------------------


def lag_per_topic(
    committed: Mapping[tuple[str, int], int], ends: Mapping[tuple[str, int], int]
) -> dict[str, int]:
    """Per topic, the records the group has not committed yet: end offset - committed offset,
    summed over the partitions it has committed (no commit: no lag is known) and whose end
    offset was read. Never negative: an end read before a commit can be behind it."""
    lags: dict[str, int] = {}
    for (topic, partition), offset in committed.items():
        end = ends.get((topic, partition))
        if offset < 0 or end is None or end < 0:
            continue
        lags[topic] = lags.get(topic, 0) + max(end - offset, 0)
    return lags


def lag_readings(
    committed_by_group: Mapping[str, Mapping[tuple[str, int], int]],
    ends: Mapping[tuple[str, int], int],
) -> tuple[LagReading, ...]:
    return tuple(
        LagReading(group, topic, lag)
        for group, committed in sorted(committed_by_group.items())
        for topic, lag in sorted(lag_per_topic(committed, ends).items())
    )


# -- Flink -------------------------------------------------------------------------------------


def pick_jobs(overview: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One job per name from ``/jobs/overview``'s ``jobs``: a resubmitted job leaves its
    cancelled predecessor listed, so the running one wins, else the newest (by start-time)."""
    best: dict[str, Mapping[str, Any]] = {}
    for job in overview:
        name = job.get("name")
        if not isinstance(name, str) or not name:
            continue
        current = best.get(name)
        if current is None or _rank(job) > _rank(current):
            best[name] = job
    return [best[n] for n in sorted(best)]


def _rank(job: Mapping[str, Any]) -> tuple[bool, int]:
    start = job.get("start-time")
    return job.get("state") == RUNNING, start if isinstance(start, int) else -1


def checkpoint_age_s(
    checkpoints: Mapping[str, Any] | None, start_time_ms: Any, now_ms: int
) -> float | None:
    """From ``/jobs/:jobid/checkpoints``: seconds since the latest completed checkpoint was
    acknowledged, or since the job started when none has completed; None if unknown."""
    completed = ((checkpoints or {}).get("latest") or {}).get("completed") or {}
    at = completed.get("latest_ack_timestamp")
    if not isinstance(at, int) or at <= 0:
        if checkpoints is None or not isinstance(start_time_ms, int) or start_time_ms <= 0:
            return None
        at = start_time_ms
    return max(now_ms - at, 0) / 1000.0


def num_restarts(metrics: Any) -> int | None:
    """``numRestarts`` from ``/jobs/:jobid/metrics?get=numRestarts``
    (``[{"id": "numRestarts", "value": "0"}]``)."""
    if not isinstance(metrics, list):
        return None
    for item in metrics:
        if isinstance(item, dict) and item.get("id") == "numRestarts":
            value = number(item.get("value"))
            return None if value is None else int(value)
    return None


def job_reading(
    url: str,
    job: Mapping[str, Any],
    checkpoints: Mapping[str, Any] | None,
    metrics: Any,
    now_ms: int,
) -> JobReading:
    """One job of :func:`pick_jobs`, with its details (None where they did not answer)."""
    state = str(job.get("state", "UNKNOWN"))
    if state != RUNNING:
        return JobReading(str(job["name"]), url, state)
    return JobReading(
        name=str(job["name"]),
        url=url,
        state=state,
        restarts=num_restarts(metrics),
        checkpoint_age_s=checkpoint_age_s(checkpoints, job.get("start-time"), now_ms),
    )


def unreachable_jobs(url: str, names: Iterable[str]) -> list[JobReading]:
    """The jobs last seen at a REST API that does not answer now: known to be not up."""
    return [JobReading(name, url, UNREACHABLE) for name in sorted(names)]


def merge_jobs(per_url: Iterable[Sequence[JobReading]]) -> tuple[JobReading, ...]:
    """One reading per job name over several REST APIs (a label set must be unique): the
    running one wins, else the first."""
    best: dict[str, JobReading] = {}
    for readings in per_url:
        for r in readings:
            if r.name not in best or (r.up and not best[r.name].up):
                best[r.name] = r
    return tuple(best[n] for n in sorted(best))
