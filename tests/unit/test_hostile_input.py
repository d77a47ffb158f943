"""Hostile input to the two record parsers (issue 27): whatever the bytes, a verdict (a value,
or a Rejection with a contract reason), never an exception; and every accepted value is one
the rest of the system can hold: times in a Java long, finite coordinates and speeds in their
ranges, ids of bounded length, promises within 365 days of their scan."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.hostile_records import JAVA_LONG_MAX, NOW, PROMISE_MS, ping_records, scan_records
from udfs.models import Ping, Reason, Rejection, Scan, ScanType
from udfs.ping_validation import MAX_FUTURE_MS, MAX_TS_MS, MIN_TS_MS, TRUCK_ID_RE, parse_ping
from udfs.scan_validation import ID_RE, parse_scan
from udfs.scan_validation import MAX_TS_MS as SCAN_MAX_TS_MS

pytestmark = pytest.mark.unit

# Wall clocks the parsers may be handed: now, and far ends (a clock set wrong must not make an
# accepted time leave a Java long either).
CLOCKS = st.sampled_from([NOW, MIN_TS_MS, JAVA_LONG_MAX - MAX_FUTURE_MS, JAVA_LONG_MAX])


def _finite_in(v: object, low: float, high: float) -> bool:
    return type(v) is float and math.isfinite(v) and low <= v <= high


def check_rejection(r: Rejection) -> None:
    assert isinstance(r.reason, Reason) and isinstance(r.detail, str) and r.detail


def check_ping(p: Ping, now: int) -> None:
    """What an accepted ping guarantees to the tracking job, Redis and Flink."""
    assert TRUCK_ID_RE.fullmatch(p.truck_id) and len(p.truck_id) <= 64
    assert type(p.ts) is int and 0 <= p.ts <= JAVA_LONG_MAX
    assert MIN_TS_MS <= p.ts <= min(now + MAX_FUTURE_MS, MAX_TS_MS)
    assert _finite_in(p.lat, -90.0, 90.0) and _finite_in(p.lng, -180.0, 180.0)
    assert p.speed_kph is None or _finite_in(p.speed_kph, 0.0, 300.0)
    assert p.heading is None or _finite_in(p.heading, 0.0, 360.0)
    assert p.accuracy_m is None or _finite_in(p.accuracy_m, -math.inf, math.inf)
    assert p.status is None or type(p.status) is str
    p.to_json()  # encodes as the jobs send it on


def check_scan(s: Scan, now: int) -> None:
    """What an accepted scan guarantees to the delay job, Redis and Flink."""
    for ident in (s.scan_id, s.shipment_id, s.truck_id, s.hub_id):
        assert ident is None or (ID_RE.fullmatch(ident) and len(ident) <= 64)
    assert isinstance(s.type, ScanType)
    assert type(s.ts) is int and 0 <= s.ts <= JAVA_LONG_MAX
    assert MIN_TS_MS <= s.ts <= min(now + MAX_FUTURE_MS, MAX_TS_MS)
    if s.type is ScanType.PICKED_UP:
        assert s.promised_by is not None
    if s.promised_by is not None:
        assert type(s.promised_by) is int and abs(s.promised_by - s.ts) <= PROMISE_MS
        assert 0 <= s.promised_by <= JAVA_LONG_MAX
    for lat, lng in ((s.lat, s.lng), (s.dest_lat, s.dest_lng)):
        assert (lat is None) == (lng is None)
        if lat is not None:
            assert _finite_in(lat, -90.0, 90.0) and _finite_in(lng, -180.0, 180.0)
    s.to_json()


def _fuzz(
    parse: Callable[[bytes, int], object],
    records: st.SearchStrategy[bytes],
    check: Callable[[Any, int], None],
    examples: int,
    derandomize: bool = False,
) -> set[str]:
    """Run ``parse`` on hostile records and random bytes, at every clock of CLOCKS: each gets
    a Rejection with a reason or a value ``check`` accepts. The verdicts seen, by name."""
    seen: set[str] = set()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        database=None if derandomize else settings.default.database,
    )
    @given(raw=st.one_of(records, st.binary(max_size=200)), now=CLOCKS)
    def run(raw: bytes, now: int) -> None:
        result = parse(raw, now)
        if isinstance(result, Rejection):
            check_rejection(result)
            seen.add(result.reason.value)
        else:
            check(result, now)
            seen.add("ACCEPTED")

    run()
    return seen


def _check_ping(p: Any, now: int) -> None:
    assert isinstance(p, Ping)
    check_ping(p, now)


def _check_scan(s: Any, now: int) -> None:
    assert isinstance(s, Scan)
    check_scan(s, now)


def test_any_ping_record_gets_a_verdict_and_accepted_pings_are_in_range() -> None:
    _fuzz(parse_ping, ping_records(), _check_ping, 800)


def test_any_scan_record_gets_a_verdict_and_accepted_scans_are_in_range() -> None:
    _fuzz(parse_scan, scan_records(), _check_scan, 800)


def test_the_generators_reach_acceptance_and_most_rejections() -> None:
    """The checks above check something: a fixed sample (derandomized, so no run is unlucky)
    holds accepted records and the common rejections."""
    common = {
        "ACCEPTED",
        "MALFORMED_JSON",
        "MISSING_FIELD",
        "BAD_TYPE",
        "BAD_COORDINATES",
        "BAD_VALUE",
        "FUTURE_TIMESTAMP",
    }
    assert _fuzz(parse_ping, ping_records(), _check_ping, 400, derandomize=True) >= common
    assert _fuzz(parse_scan, scan_records(), _check_scan, 400, derandomize=True) >= common | {
        "UNKNOWN_SCAN_TYPE"
    }


_SCAN = b'{"scan_id":"A","shipment_id":"S","type":"%s","ts":%s%s}'
_PING = b'{"truck_id":"T1","ts":%s,"lat":47.6,"lng":-122.3%s}'


@pytest.mark.parametrize(
    ("parse", "raw", "reason"),
    [
        (
            parse_scan,
            _SCAN % (b"PICKED_UP", b"1764099641123", b',"promised_by":9223372036854775807'),
            Reason.BAD_VALUE,
        ),
        (
            parse_scan,
            _SCAN % (b"PICKED_UP", b"1764099641123", b',"promised_by":18446744073709551616'),
            Reason.BAD_VALUE,
        ),
        (
            parse_scan,
            _SCAN % (b"PICKED_UP", b"1764099641123", b',"promised_by":-9223372036854775808'),
            Reason.BAD_VALUE,
        ),
        (
            parse_scan,
            _SCAN % (b"PICKED_UP", b"1764099641123", b',"promised_by":1795635641124'),
            Reason.BAD_VALUE,
        ),  # 365 days and a millisecond
        (
            parse_scan,
            _SCAN % (b"ARRIVED_HUB", b"9223372036854775808", b""),
            Reason.FUTURE_TIMESTAMP,
        ),
        (parse_scan, _SCAN % (b"ARRIVED_HUB", b"1e400", b""), Reason.MALFORMED_JSON),
        (
            parse_scan,
            _SCAN % (b"ARRIVED_HUB", b"1764099641123", b',"lat":NaN,"lng":1'),
            Reason.MALFORMED_JSON,
        ),
        (
            parse_scan,
            _SCAN % (b"ARRIVED_HUB", b"1764099641123", b',"lat":18446744073709551616,"lng":1'),
            Reason.BAD_COORDINATES,
        ),
        (parse_ping, _PING % (b"1764099641123", b',"speed_kph":Infinity'), Reason.MALFORMED_JSON),
        (parse_ping, _PING % (b"1764099641123", b',"accuracy_m":1e400'), Reason.MALFORMED_JSON),
        (parse_ping, _PING % (b"9223372036854775807", b""), Reason.FUTURE_TIMESTAMP),
        (parse_ping, _PING % (b"-9223372036854775809", b""), Reason.BAD_VALUE),
        (parse_ping, _PING % (b"1764099641123", b',"speed_kph":1e308'), Reason.BAD_VALUE),
    ],
)
def test_edge_numbers_get_their_reason(
    parse: Callable[[bytes, int], object], raw: bytes, reason: Reason
) -> None:
    r = parse(raw, NOW)
    assert isinstance(r, Rejection), r
    check_rejection(r)
    assert r.reason is reason, r


@pytest.mark.parametrize("ts", [MAX_TS_MS + 1, JAVA_LONG_MAX, 2**63, 2**64 - 1])
def test_a_clock_set_wrong_lets_no_time_out_of_range_in(ts: int) -> None:
    """The injected clock bounds times from above; MAX_TS_MS bounds them whatever the clock
    says (found by the fuzz tests above at the clock JAVA_LONG_MAX: ts 2^63 was accepted)."""
    clock = JAVA_LONG_MAX
    ping = parse_ping(_PING % (str(ts).encode(), b""), clock)
    scan = parse_scan(_SCAN % (b"ARRIVED_HUB", str(ts).encode(), b""), clock)
    for r in (ping, scan):
        assert isinstance(r, Rejection) and r.reason is Reason.FUTURE_TIMESTAMP, r
    assert isinstance(parse_ping(_PING % (str(MAX_TS_MS).encode(), b""), clock), Ping)
    assert isinstance(
        parse_scan(_SCAN % (b"ARRIVED_HUB", str(MAX_TS_MS).encode(), b""), clock), Scan
    )
    assert SCAN_MAX_TS_MS == MAX_TS_MS  # one bound, written down twice
