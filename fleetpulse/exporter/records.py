"""Labels of the records counted on the alerts and dead-letter topics, with bounded values.

Anyone can write to a topic, so a label value comes from untrusted input: each label takes only
values of a plain form, and at most a fixed number of distinct ones; anything else counts under
``other``. A hostile or broken producer can then not grow the exporter's series without bound.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field

import orjson

OTHER = "other"
UNREADABLE = "UNREADABLE"  # a dead letter that is not a JSON object
ALERT_ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})
# the action label of a trigger that repeats the last one of its key: a source re-asserting an
# alert still open (every --alert-refresh-s, issue 29), not a new alert
REASSERT = "reassert"
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
class Reassertions:
    """Tells a trigger that repeats, byte for byte, the last trigger of its ``dedup_key`` from
    a new one. One digest per key open, at most ``limit`` (the oldest forgotten first: a
    forgotten key's next re-assertion counts once more as a trigger). Not thread-safe: the
    topic tail calls it from one thread."""

    limit: int = 1_000_000
    _last: dict[str, bytes] = field(default_factory=dict)

    def action(self, value: bytes, action: str) -> str:
        if action not in ("trigger", "resolve"):
            return action
        doc = _object(value)
        key = doc.get("dedup_key") if doc is not None else None
        if not isinstance(key, str):
            return action
        if action == "resolve":
            self._last.pop(key, None)
            return action
        digest = hashlib.blake2b(value, digest_size=16).digest()
        if self._last.get(key) == digest:
            return REASSERT
        self._last.pop(key, None)  # to the end: the newest
        self._last[key] = digest
        if len(self._last) > self.limit:
            del self._last[next(iter(self._last))]
        return action


@dataclass
class RecordLabels:
    """The guarded labels of both families, one guard per label."""

    limit: int = 100
    alert_class: LabelGuard = field(init=False)
    alert_job: LabelGuard = field(init=False)
    reason: LabelGuard = field(init=False)
    source_topic: LabelGuard = field(init=False)
    reassertions: Reassertions = field(default_factory=Reassertions)

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
        assert value is not None  # labels come only from a record with a value
        action = self.reassertions.action(value, str(action))
        return self.alert_class(cls), action, self.alert_job(job)

    def dead_letter(self, value: bytes | None) -> tuple[str, str]:
        reason, topic = dead_letter_labels(value)
        return self.reason(reason), self.source_topic(topic)
