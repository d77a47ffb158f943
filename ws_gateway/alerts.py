"""Critical alerts from `fleet.alerts` for the map: decode (pure) and a Kafka reader thread.

Every gateway process reads every partition from the end (no consumer group): each process
serves its own clients, and an alert from before a client connected is not news to it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger(__name__)

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class MapAlert:
    """An alert event worth showing, with where it happened (if known)."""

    event: dict[str, Any]
    lat: float | None
    lng: float | None
    truck_id: str | None


def _coord(v: Any, lo: float, hi: float) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if lo <= v <= hi else None


def decode_alert(raw: bytes, min_severity: str = "critical") -> MapAlert | None:
    """The alert if it is a ``trigger`` at ``min_severity`` or above; None otherwise (also
    for records that are not alert events: the gateway is not their validator)."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("event_action") != "trigger":
        return None
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return None
    rank = SEVERITY_RANK.get(str(payload.get("severity")), -1)
    if rank < SEVERITY_RANK.get(min_severity, 3):
        return None
    details = payload.get("custom_details")
    details = details if isinstance(details, dict) else {}
    truck = details.get("truck_id")
    return MapAlert(event, _coord(details.get("lat"), -90, 90),
                    _coord(details.get("lng"), -180, 180),
                    truck if isinstance(truck, str) else None)


class AlertReader:
    """Reads `fleet.alerts` in a thread and hands decoded alerts to ``deliver`` (which must be
    thread-safe, e.g. ``loop.call_soon_threadsafe``)."""

    def __init__(self, bootstrap: str, topic: str, deliver: Callable[[MapAlert], None],
                 min_severity: str = "critical") -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.deliver = deliver
        self.min_severity = min_severity
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
                consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                         enable_auto_commit=False,
                                         auto_offset_reset="latest")
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
                while not self._stop.is_set():
                    for records in consumer.poll(timeout_ms=200).values():
                        for rec in records:
                            alert = decode_alert(rec.value, self.min_severity)
                            if alert is not None:
                                self.deliver(alert)
            except Exception as exc:  # noqa: BLE001 - keep serving positions; retry Kafka
                self.error = repr(exc)
                self.ready.clear()
                log.warning("alert reader: %r; retrying", exc)
                self._stop.wait(1.0)
            finally:
                if consumer is not None:
                    consumer.close()
