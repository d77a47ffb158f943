"""The resolve the dispatcher makes up for a firing alert whose source stopped re-asserting it
(``global.resolve_timeout``, issue 29). Pure.

Sources re-send the trigger of every open alert periodically; one not re-sent for
``resolve_timeout`` has no source left that holds it open (the job lost its state, the alert
ended while its resolve was lost, ...). The resolve copies the identity and labels of the last
trigger (``dedup_key``, ``class``, ``group``, ``severity``, ``component``, ``source`` and the
``custom_details``), so it routes like the trigger, and says why in ``summary`` and
``custom_details.reason``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerting.config import format_duration_ms
from alerting.records import Alert, decode_event
from udfs.models import PAGERDUTY_SEVERITIES, Rejection

REASON = "resolve_timeout"
#: ``payload.source`` of a timeout resolve when the key's last trigger is not known
DISPATCHER_SOURCE = "fleetpulse-alerting"
_COPIED = ("component", "group", "class")


def timeout_resolve(
    dedup_key: str, last: Alert | None, labels: dict[str, str], timeout_ms: int, now_ms: int
) -> Alert:
    """The resolve of ``dedup_key`` at ``now_ms``: from its last trigger ``last`` or, when that
    is not known (only an acknowledge was seen), from its firing ``labels``."""
    base: dict[str, Any] = dict(last.payload) if last is not None and last.payload else {}
    severity = base.get("severity") or labels.get("severity")
    details = base.get("custom_details")
    payload: dict[str, Any] = {
        "summary": (
            "Resolved because its source stopped re-asserting it for "
            f"{format_duration_ms(timeout_ms)}: {base.get('summary') or dedup_key}"
        ),
        "source": base.get("source") or labels.get("source") or DISPATCHER_SOURCE,
        "severity": severity if severity in PAGERDUTY_SEVERITIES else "info",
        "timestamp": datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(timespec="milliseconds"),
        **{k: v for k in _COPIED if isinstance(v := base.get(k) or labels.get(k), str)},
        "custom_details": {**(details if isinstance(details, dict) else {}), "reason": REASON},
    }
    event: dict[str, Any] = {"event_action": "resolve", "dedup_key": dedup_key, "payload": payload}
    if last is not None and last.links:
        event["links"] = list(last.links)
    result = decode_event(event, record_ts_ms=now_ms)
    if isinstance(result, Rejection):  # pragma: no cover - built from a valid alert
        raise ValueError(f"timeout resolve of {dedup_key!r}: {result.detail}")
    return result
