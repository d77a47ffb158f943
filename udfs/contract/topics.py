"""The Kafka topics of docs/contract.md, with partition counts and retention."""

from __future__ import annotations

from dataclasses import dataclass

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicNames:
    """Topic names; configurable, with the contract's names as defaults."""

    gps: str = "fleet.gps"
    scans: str = "fleet.scans"
    alerts: str = "fleet.alerts"
    geofence_events: str = "fleet.geofence-events"
    dlq: str = "fleet.dlq"


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the launchers create it."""

    name: str
    partitions: int
    retention_ms: int


def contract_topics(names: TopicNames = TopicNames()) -> list[TopicSpec]:
    """Four partitions for the high-volume inputs (two Flink subtasks each get two), fewer for
    outputs; raw input kept a day, alerts and dead letters a week for replays and audits."""
    return [
        TopicSpec(names.gps, 4, 24 * HOUR_MS),
        TopicSpec(names.scans, 4, 7 * 24 * HOUR_MS),
        TopicSpec(names.alerts, 2, 7 * 24 * HOUR_MS),
        TopicSpec(names.geofence_events, 2, 24 * HOUR_MS),
        TopicSpec(names.dlq, 1, 14 * 24 * HOUR_MS),
    ]


DEFAULT_TOPICS = TopicNames()
