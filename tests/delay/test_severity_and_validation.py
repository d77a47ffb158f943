"""Severity bands and scan validation (pure)."""

from __future__ import annotations

import orjson
import pytest

from udfs.models import Reason, Rejection, Scan, ScanType
from udfs.scan_validation import parse_scan
from udfs.severity import delay_severity, next_escalation_ms, pagerduty_severity

pytestmark = pytest.mark.unit

NOW = 1_764_100_000_000
MIN = 60_000


@pytest.mark.parametrize(
    ("late_ms", "sev"),
    [
        (-1, 0),
        (0, 0),
        (1, 1),
        (30 * MIN, 1),
        (30 * MIN + 1, 2),
        (120 * MIN, 2),
        (120 * MIN + 1, 3),
        (360 * MIN, 3),
        (360 * MIN + 1, 4),
        (1440 * MIN, 4),
        (1440 * MIN + 1, 5),
        (10**10, 5),
    ],
)
def test_contract_bands(late_ms: int, sev: int) -> None:
    assert delay_severity(late_ms) == sev


def test_next_escalation_is_the_first_ms_of_the_next_band() -> None:
    assert next_escalation_ms(-5) == 1
    assert next_escalation_ms(1) == 30 * MIN + 1
    assert delay_severity(next_escalation_ms(1) or 0) == 2  # noqa: PLR2004
    assert next_escalation_ms(1440 * MIN + 1) is None


def test_pagerduty_mapping() -> None:
    assert [pagerduty_severity(s) for s in range(1, 6)] == [
        "info",
        "warning",
        "error",
        "critical",
        "critical",
    ]


def _raw(**kw: object) -> bytes:
    d: dict[str, object] = {
        "scan_id": "SC-1",
        "shipment_id": "S1",
        "type": "ARRIVED_HUB",
        "ts": NOW - 1000,
    }
    d.update(kw)
    return orjson.dumps({k: v for k, v in d.items() if v is not None})


def test_valid_pickup() -> None:
    s = parse_scan(
        _raw(
            type="PICKED_UP",
            promised_by=NOW + 10,
            lat=47.6,
            lng=-122.3,
            dest_lat=45.5,
            dest_lng=-122.6,
            truck_id="T1",
            hub_id="HUB-SEA",
        ),
        NOW,
    )
    assert isinstance(s, Scan)
    assert s.type is ScanType.PICKED_UP and s.promised_by == NOW + 10 and s.dest_lat == 45.5


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", Reason.MALFORMED_JSON),
        (b"[1, 2]", Reason.MALFORMED_JSON),
        (b"x" * 70_000, Reason.TOO_LARGE),
        (_raw(scan_id=None), Reason.MISSING_FIELD),
        (_raw(shipment_id=7), Reason.BAD_TYPE),
        (_raw(type="TELEPORTED"), Reason.UNKNOWN_SCAN_TYPE),
        (_raw(type=None), Reason.MISSING_FIELD),
        (_raw(ts="yesterday"), Reason.BAD_TYPE),
        (_raw(ts=1_700_000_000), Reason.BAD_VALUE),
        (_raw(ts=NOW + 10 * MIN), Reason.FUTURE_TIMESTAMP),
        (_raw(type="PICKED_UP"), Reason.MISSING_FIELD),
        (_raw(lat=91.0, lng=0.5), Reason.BAD_COORDINATES),
        (_raw(lat=45.0), Reason.MISSING_FIELD),
        (_raw(dest_lat=45.0, dest_lng=-181.0), Reason.BAD_COORDINATES),
        (_raw(shipment_id="has space"), Reason.BAD_VALUE),
    ],
)
def test_rejections(raw: bytes, reason: Reason) -> None:
    r = parse_scan(raw, NOW)
    assert isinstance(r, Rejection), r
    assert r.reason is reason
