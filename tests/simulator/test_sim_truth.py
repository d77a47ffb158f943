"""The ground truth names every alert class, follows the rules, and scores observed alerts."""

from __future__ import annotations

from typing import Any

import pytest
from simtest_support import Run

from simulator.truth import (
    CLASSES,
    ExpectedAlert,
    GroundTruth,
    delay_severity,
    observed_incidents,
    score_alerts,
    score_dead_letters,
)
from udfs.models import iso8601

pytestmark = pytest.mark.unit


def alert(action: str, cls: str, subject: str, ts: int) -> dict[str, Any]:
    return {
        "event_action": action,
        "dedup_key": f"{cls}:{subject}",
        "payload": {"class": cls, "timestamp": iso8601(ts), "custom_details": {}},
    }


def perfect_alerts(truth: GroundTruth) -> list[dict[str, Any]]:
    out = []
    for e in truth.alerts:
        if e.required:
            out.append(alert("trigger", e.alert_class, e.subject, e.trigger_ms))
            if e.resolve_ms is not None:
                out.append(alert("resolve", e.alert_class, e.subject, e.resolve_ms))
    return out


def test_every_alert_class_is_expected(clean_run: Run) -> None:
    classes = {a.alert_class for a in clean_run.truth.required()}
    assert classes == set(CLASSES)


def test_truth_matches_the_rules(clean_run: Run) -> None:
    t = clean_run.truth
    for a in t.required("truck_offline"):
        assert a.details.get("silent_s", 10_000) > 600
    for a in t.required("truck_stopped_unplanned"):
        assert a.details["stopped_s"] >= 1800
    for sid, late in t.late_shipments.items():
        assert late["late_by_s"] > 0
        assert late["delivered_ms"] is None or late["delivered_ms"] > late["promised_by"]
        assert any(a.subject == sid for a in t.alerts if a.alert_class == "shipment_late")
    for a in t.alerts:
        assert a.earliest_ms <= a.trigger_ms <= a.latest_ms
        assert a.resolve_ms is None or a.resolve_ms >= a.trigger_ms


def test_truth_json_roundtrip(clean_run: Run) -> None:
    data = clean_run.truth.to_json()
    again = GroundTruth.from_json(data)
    assert again.to_json() == data


def test_delay_severity_bands() -> None:
    m = 60_000
    assert [
        delay_severity(x)
        for x in (1, 30 * m, 31 * m, 120 * m, 6 * 60 * m, 24 * 60 * m, 25 * 60 * m)
    ] == [1, 1, 2, 2, 3, 4, 5]


def test_perfect_alerts_score_one(clean_run: Run) -> None:
    s = score_alerts(clean_run.truth, perfect_alerts(clean_run.truth))
    assert s.perfect and s.precision == 1.0 and s.recall == 1.0, s.report()


def test_missing_spurious_and_tolerated(clean_run: Run) -> None:
    t = clean_run.truth
    alerts = perfect_alerts(t)
    dropped = next(a for a in alerts if a["payload"]["class"] == "truck_offline")
    alerts.remove(dropped)
    alerts.append(alert("trigger", "truck_offline", "T99999", t.start_ms + 3_600_000))
    alerts.append(alert("trigger", "shipment_at_risk", "S-any", t.start_ms + 3_600_000))
    alerts.append(alert("trigger", "truck_offline", "T00001", t.end_ms + 600_000))  # after end
    s = score_alerts(t, alerts)
    assert [m.dedup_key for m in s.missed] == [dropped["dedup_key"]]
    assert [(u.alert_class, u.subject) for u in s.unexpected] == [("truck_offline", "T99999")]
    off = s.per_class["truck_offline"]
    assert (off.fp, off.fn) == (1, 1) and s.recall < 1.0 and s.precision < 1.0


def test_wrong_time_is_not_a_match() -> None:
    e = ExpectedAlert("truck_offline", "T1", 1_000_000, 990_000, 1_010_000, None)
    t = GroundTruth(1, 0, 10**9, {}, {}, [e], [], [], [], [], {})
    assert score_alerts(t, [alert("trigger", "truck_offline", "T1", 1_005_000)]).perfect
    s = score_alerts(t, [alert("trigger", "truck_offline", "T1", 5_000_000)])
    assert len(s.missed) == 1 and len(s.unexpected) == 1


def test_escalations_fold_into_one_incident() -> None:
    evs = [
        alert("trigger", "shipment_late", "S1", 1000),
        alert("trigger", "shipment_late", "S1", 5000),
        alert("resolve", "shipment_late", "S1", 9000),
        alert("trigger", "shipment_late", "S1", 20000),
    ]
    incs = observed_incidents(evs)
    assert [(i.trigger_ms, i.resolve_ms, i.events) for i in incs] == [
        (1000, 9000, 2),
        (20000, None, 1),
    ]


def test_dead_letter_scoring(faulty_run: Run) -> None:
    t = faulty_run.truth
    dlq = [
        {"source_topic": f"fleet.{m.topic}", "reason": m.reason, "raw": m.raw, "ts": 0}
        for m in t.malformed
    ]
    assert score_dead_letters(t, dlq).perfect
    s = score_dead_letters(
        t, dlq[1:] + [{"source_topic": "fleet.gps", "reason": "TOO_LARGE", "raw": "x", "ts": 0}]
    )
    assert len(s.missed) == 1 and len(s.unexpected) == 1
