"""Every way a ping can be wrong maps to a contract reason; nothing raises."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.models import Ping, Reason, Rejection
from udfs.ping_validation import NUMERIC_FIELDS, _number, _numbers, parse_ping

pytestmark = pytest.mark.unit
NOW = 1_764_099_641_123


def ping_bytes(**overrides: object) -> bytes:
    d: dict[str, object] = {"truck_id": "T00042", "ts": NOW - 1000, "lat": 47.6062,
                            "lng": -122.3321, "speed_kph": 87.5, "heading": 270,
                            "accuracy_m": 8, "status": "IN_TRANSIT"}
    d.update(overrides)
    return orjson.dumps({k: v for k, v in d.items() if v is not ...})


def test_valid_ping_decodes_every_field() -> None:
    p = parse_ping(ping_bytes(), NOW)
    assert p == Ping("T00042", NOW - 1000, 47.6062, -122.3321, 87.5, 270.0, 8.0, "IN_TRANSIT")


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", Reason.MALFORMED_JSON),
    (b"\xff\xfe\x00", Reason.MALFORMED_JSON),
    (b"[1, 2]", Reason.MALFORMED_JSON),
    (ping_bytes(truck_id=...), Reason.MISSING_FIELD),
    (ping_bytes(ts=...), Reason.MISSING_FIELD),
    (ping_bytes(lat=...), Reason.MISSING_FIELD),
    (ping_bytes(lat="47.6"), Reason.BAD_TYPE),
    (ping_bytes(ts="yesterday"), Reason.BAD_TYPE),
    (ping_bytes(truck_id=42), Reason.BAD_TYPE),
    (ping_bytes(lat=91.2), Reason.BAD_COORDINATES),
    (ping_bytes(lng=-180.5), Reason.BAD_COORDINATES),
    (ping_bytes(lat=0, lng=0), Reason.BAD_COORDINATES),
    (ping_bytes(ts=NOW + 5 * 60 * 1000 + 1), Reason.FUTURE_TIMESTAMP),
    (ping_bytes(truck_id="bad id with spaces"), Reason.BAD_VALUE),
    (ping_bytes(speed_kph=301), Reason.BAD_VALUE),
    (b"x" * (64 * 1024 + 1), Reason.TOO_LARGE),
])
def test_bad_records_get_their_reason(raw: bytes, reason: Reason) -> None:
    result = parse_ping(raw, NOW)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.detail


def test_five_minutes_ahead_is_still_accepted() -> None:
    assert isinstance(parse_ping(ping_bytes(ts=NOW + 5 * 60 * 1000), NOW), Ping)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_ping_or_a_rejection(raw: bytes) -> None:
    assert isinstance(parse_ping(raw, NOW), Ping | Rejection)


@given(st.dictionaries(st.sampled_from(["truck_id", "ts", "lat", "lng", "speed_kph",
                                        "heading", "status", "x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                 st.text(max_size=70), st.lists(st.integers(), max_size=2))))
def test_any_json_object_gives_a_ping_or_a_rejection(d: dict[str, object]) -> None:
    try:
        raw = orjson.dumps(d)
    except orjson.JSONEncodeError:  # NaN and friends: send Python's spelling instead
        raw = repr(d).encode()
    assert isinstance(parse_ping(raw, NOW), Ping | Rejection)


@given(st.dictionaries(st.sampled_from([name for name, _ in NUMERIC_FIELDS] + ["x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                                 st.floats(), st.text(max_size=5))))
def test_numeric_fields_follow_the_rules_of_each_field(d: dict[str, object]) -> None:
    """The fast path of _numbers gives exactly what _number gives field by field (NaN and
    infinities included, which a float can hold although JSON cannot spell them)."""
    expected: list[float | None] | Rejection = []
    for name, required in NUMERIC_FIELDS:
        v = _number(d, name, required)
        if isinstance(v, Rejection):
            expected = v
            break
        assert isinstance(expected, list)
        expected.append(v)
    got = _numbers(d)
    assert got == expected
    if isinstance(got, list):
        assert all(v is None or type(v) is float for v in got)
