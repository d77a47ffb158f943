"""Labels of the records counted on the alerts and dead-letter topics, with bounded values.

Anyone can write to a topic, so a label value comes from untrusted input: each label takes only
values of a plain form, and at most a fixed number of distinct ones; anything else counts under
``other``. A hostile or broken producer can then not grow the exporter's series without bound.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import orjson

OTHER = "other"
UNREADABLE = "UNREADABLE"  # a dead letter that is not a JSON object
ALERT_ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})
SOURCE_PREFIX = "fleetpulse/"  # alert payload source: "fleetpulse/delay-job" -> job "delay-job"
WORD = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")  # Kafka's own topic name rule


@dataclass
class LabelGuard:
    """Passes a value through if it has the plain form and is one of the first ``limit``
    distinct values seen; ``other`` otherwise. Thread-safe."""

    limit: int = 100
    pattern: re.Pattern[str] = WORD
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, value: object) -> str:
        if not isinstance(value, str) or not self.pattern.fullmatch(value):
            return OTHER
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(value)
            return value


def _object(value: bytes | None) -> dict | None:  # type: ignore[type-arg]
    if value is None:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def alert_labels(value: bytes | None) -> tuple[object, object, object] | None:
    """(class, action, job) of an alert event (docs/contract.md), unguarded; None for a record
    that is no alert event (the dispatcher dead-letters those, so they count there)."""
    doc = _object(value)
    if doc is None or not isinstance(doc.get("payload"), dict):
        return None
    payload = doc["payload"]
    action = doc.get("event_action")
    source = payload.get("source")
    job = source.removeprefix(SOURCE_PREFIX) if isinstance(source, str) else None
    return payload.get("class"), action if action in ALERT_ACTIONS else OTHER, job


def dead_letter_labels(value: bytes | None) -> tuple[object, object]:
    """(reason, source_topic) of a dead letter; every record on the topic counts, an
    unreadable one with reason ``UNREADABLE``."""
    doc = _object(value)
    if doc is None:
        return UNREADABLE, OTHER
    return doc.get("reason"), doc.get("source_topic")


@dataclass
class RecordLabels:
    """The guarded labels of both families, one guard per label."""

    limit: int = 100
    alert_class: LabelGuard = field(init=False)
    alert_job: LabelGuard = field(init=False)
    reason: LabelGuard = field(init=False)
    source_topic: LabelGuard = field(init=False)

    def __post_init__(self) -> None:
        self.alert_class = LabelGuard(self.limit)
        self.alert_job = LabelGuard(self.limit)
        self.reason = LabelGuard(self.limit)
        self.source_topic = LabelGuard(self.limit, TOPIC)

    def alert(self, value: bytes | None) -> tuple[str, str, str] | None:
        labels = alert_labels(value)
        if labels is None:
            return None
        cls, action, job = labels
        return self.alert_class(cls), str(action), self.alert_job(job)

    def dead_letter(self, value: bytes | None) -> tuple[str, str]:
        reason, topic = dead_letter_labels(value)
        return self.reason(reason), self.source_topic(topic)
