"""Critical alerts from `fleet.alerts` for the map: decode (pure) and a Kafka reader thread.

Every gateway process reads every partition from the end (no consumer group): each process
serves its own clients, and an alert from before a client connected is not news to it.

The sources re-send the trigger of every open alert every few minutes (docs/alerting.md,
re-assertion); a re-sent trigger identical to the one the map already showed for its
``dedup_key`` is not pushed again (:class:`Repeats`), so an open incident does not flash on
every map every refresh. A resolve forgets the key; a trigger that differs (severity grown,
another summary) is shown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from alerting import records
from udfs.models import Rejection
from ws_gateway import frames

log = logging.getLogger(__name__)

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
MALFORMED_LOG_EVERY_S = 10.0
# How often the reader reports how far it is behind the end of the topic.
LAG_EVERY_S = 1.0


def records_behind(partitions: Iterable[tuple[int | None, int | None]]) -> int:
    """Records between each partition's position and its high watermark (from the last fetch;
    unknown counts as none), summed: the reader's lag."""
    return sum(
        max(0, high - pos) for high, pos in partitions if high is not None and pos is not None
    )


@dataclass(frozen=True, slots=True)
class MapAlert:
    """An alert event worth showing, with where it happened (if known) and its client frame,
    encoded once (and known to encode: orjson writes less nesting than it reads)."""

    event: dict[str, Any]
    lat: float | None
    lng: float | None
    truck_id: str | None
    frame: bytes = b""
    region: str | None = None  # ``payload.group``: the Census region the alert belongs to


@dataclass(frozen=True, slots=True)
class Malformed:
    """A record of ``fleet.alerts`` that is not an alert event: a contract reason code (as the
    dispatcher's dead letters have) and a detail that quotes no input."""

    reason: str
    detail: str


def _coord(v: Any, lo: float, hi: float) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if lo <= v <= hi else None


def decode_alert(raw: bytes | None, min_severity: str = "critical") -> MapAlert | Malformed | None:
    """The alert if it is a ``trigger`` at ``min_severity`` or above; None for a valid alert
    event the map does not show; :class:`Malformed` for a record that is no alert event, by the
    dispatcher's own verdict (``alerting.records.decode``, pure), so the map never shows an
    alert the dispatcher dead-letters. Never raises (tests/poison_corpus.py)."""
    verdict = records.decode(raw)
    if isinstance(verdict, Rejection):
        return Malformed(verdict.reason.value, verdict.detail)
    if verdict.event_action != "trigger":
        return None
    severity = verdict.severity
    if severity is None or SEVERITY_RANK.get(severity, -1) < SEVERITY_RANK.get(min_severity, 3):
        return None
    event = orjson.loads(raw or b"")  # the record as sent: decode() has parsed it once already
    try:
        frame = frames.alert(event)
    except orjson.JSONEncodeError as exc:
        return Malformed("BAD_VALUE", f"alert cannot be re-encoded: {exc}"[:200])
    payload = event.get("payload")
    details = payload.get("custom_details") if isinstance(payload, dict) else None
    details = details if isinstance(details, dict) else {}
    truck = details.get("truck_id")
    group = payload.get("group") if isinstance(payload, dict) else None
    return MapAlert(
        event,
        _coord(details.get("lat"), -90, 90),
        _coord(details.get("lng"), -180, 180),
        truck if isinstance(truck, str) else None,
        frame,
        group if isinstance(group, str) else None,
    )


class Repeats:
    """The frame last shown per ``dedup_key``, least recently shown dropped beyond ``limit``
    (an evicted key is shown again at its next trigger: the bound costs a repeat, never a
    lost alert)."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._shown: OrderedDict[str, bytes] = OrderedDict()

    def shown_before(self, dedup_key: str, frame: bytes) -> bool:
        """Whether ``frame`` is what was last shown for ``dedup_key``; remembers it if not."""
        if self._shown.get(dedup_key) == frame:
            self._shown.move_to_end(dedup_key)
            return True
        self._shown[dedup_key] = frame
        self._shown.move_to_end(dedup_key)
        if len(self._shown) > self.limit:
            self._shown.popitem(last=False)
        return False

    def forget(self, dedup_key: str) -> None:
        self._shown.pop(dedup_key, None)


class _Throttle:
    """True at most once per ``every_s`` (monotonic clock), counting the calls it said no to:
    a topic full of bad records must not turn into a log full of them."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._next = 0.0
        self.suppressed = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            self.suppressed += 1
            return False
        self._next = now + self.every_s
        return True


class AlertReader:
    """Reads `fleet.alerts` in a thread and hands decoded alerts to ``deliver`` (which must be
    thread-safe, e.g. ``loop.call_soon_threadsafe``).

    A record that is no alert event is counted (:attr:`malformed`, and ``on_malformed`` with
    its reason, for the gateway's metric) and logged at most every ``log_every_s`` seconds:
    the gateway is not the validator of the topic (the dispatcher dead-letters those), but a
    producer writing garbage must be visible, and no record may stop the reader.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        deliver: Callable[[MapAlert], None],
        min_severity: str = "critical",
        on_malformed: Callable[[str], None] | None = None,
        log_every_s: float = MALFORMED_LOG_EVERY_S,
        on_lag: Callable[[int], None] | None = None,
        client: Mapping[str, Any] | None = None,
    ) -> None:
        """``client``: the user's Kafka properties as kafka-python keywords (security)."""
        self.bootstrap = bootstrap
        self.client = dict(client or {})
        self.topic = topic
        self.deliver = deliver
        self.min_severity = min_severity
        self.on_malformed = on_malformed
        self.on_lag = on_lag
        self.malformed = 0
        self.repeats = Repeats()
        self.repeats_skipped = 0  # re-sent triggers not pushed again
        self._log_throttle = _Throttle(log_every_s)
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-alerts", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        while not self._stop.is_set():
            consumer = None
            try:
                consumer = KafkaConsumer(
                    bootstrap_servers=self.bootstrap,
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="latest",
                    **self.client,
                )
                parts = None
                while not self._stop.is_set():
                    parts = consumer.partitions_for_topic(self.topic)
                    if parts:
                        break
                    self._stop.wait(0.2)
                if not parts:
                    return
                tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
                consumer.assign(tps)
                consumer.seek_to_end(*tps)
                for tp in tps:  # resolve the end offsets now, so "ready" means "from here on"
                    consumer.position(tp)
                self.ready.set()
                self.error = None
                next_lag = 0.0
                while not self._stop.is_set():
                    for records in consumer.poll(timeout_ms=200).values():
                        for rec in records:
                            self.handle(rec.partition, rec.offset, rec.value)
                    if self.on_lag is not None and time.monotonic() >= next_lag:
                        next_lag = time.monotonic() + LAG_EVERY_S
                        self.on_lag(
                            records_behind(
                                (consumer.highwater(tp), consumer.position(tp)) for tp in tps
                            )
                        )
            except Exception as exc:  # noqa: BLE001 - keep serving positions; retry Kafka
                self.error = repr(exc)
                self.ready.clear()
                log.warning("alert reader: %r; retrying", exc)
                self._stop.wait(1.0)
            finally:
                if consumer is not None:
                    consumer.close()

    def handle(self, partition: int, offset: int, value: bytes | None) -> None:
        """One record: delivered, ignored, or counted as malformed; never raises on its bytes."""
        try:
            result = decode_alert(value, self.min_severity)
        except Exception as exc:  # noqa: BLE001 - a decoding bug must not stop the reader
            result = Malformed("INTERNAL", f"decoding failed: {type(exc).__name__}")
        if isinstance(result, Malformed):
            self._count_malformed(partition, offset, result)
        elif result is not None:
            key = str(result.event.get("dedup_key", ""))
            if self.repeats.shown_before(key, result.frame):
                self.repeats_skipped += 1
            else:
                self.deliver(result)
        else:  # an event the map does not show: a resolve lets its key be shown again
            verdict = records.decode(value)
            if not isinstance(verdict, Rejection) and verdict.event_action == "resolve":
                self.repeats.forget(verdict.dedup_key)

    def _count_malformed(self, partition: int, offset: int, m: Malformed) -> None:
        self.malformed += 1
        if self.on_malformed is not None:
            try:
                self.on_malformed(m.reason)
            except Exception:  # noqa: BLE001 - a metric must not stop the reader
                log.exception("counting a malformed alert")
        if self._log_throttle.allow():
            more = self._log_throttle.suppressed
            self._log_throttle.suppressed = 0
            log.warning(
                "malformed record on %s partition %d offset %d: %s: %s%s",
                self.topic,
                partition,
                offset,
                m.reason,
                m.detail,
                f" ({more} more since the last report)" if more else "",
            )
