"""Every way a ping can be wrong maps to a contract reason; nothing raises."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.models import Ping, Reason, Rejection
from udfs.ping_validation import (
    MAX_FUTURE_MS,
    MIN_TS_MS,
    NUMERIC_FIELDS,
    _number,
    _numbers,
    parse_ping,
    validate_ping,
)

pytestmark = pytest.mark.unit
NOW = 1_764_099_641_123


def ping_bytes(**overrides: object) -> bytes:
    d: dict[str, object] = {
        "truck_id": "T00042",
        "ts": NOW - 1000,
        "lat": 47.6062,
        "lng": -122.3321,
        "speed_kph": 87.5,
        "heading": 270,
        "accuracy_m": 8,
        "status": "IN_TRANSIT",
    }
    d.update(overrides)
    return orjson.dumps({k: v for k, v in d.items() if v is not ...})


def test_valid_ping_decodes_every_field() -> None:
    p = parse_ping(ping_bytes(), NOW)
    assert p == Ping("T00042", NOW - 1000, 47.6062, -122.3321, 87.5, 270.0, 8.0, "IN_TRANSIT")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
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
    ],
)
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


@given(
    st.dictionaries(
        st.sampled_from(["truck_id", "ts", "lat", "lng", "speed_kph", "heading", "status", "x"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=70),
            st.lists(st.integers(), max_size=2),
        ),
    )
)
def test_any_json_object_gives_a_ping_or_a_rejection(d: dict[str, object]) -> None:
    try:
        raw = orjson.dumps(d)
    except orjson.JSONEncodeError:  # NaN and friends: send Python's spelling instead
        raw = repr(d).encode()
    assert isinstance(parse_ping(raw, NOW), Ping | Rejection)


@given(
    st.dictionaries(
        st.sampled_from([name for name, _ in NUMERIC_FIELDS] + ["x"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(),
            st.text(max_size=5),
        ),
    )
)
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


# The fast path (msgspec, typed) against the full validation: same verdict, same values.
_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
_NUMBER_TEXT = st.one_of(  # how devices may spell a number: many digits, exponents, -0
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.sampled_from(
        [
            "-0",
            "-0.0",
            "0e0",
            "1e400",
            "-1e400",
            "90",
            "90.0000000000000001",
            "-180.00000000000001",
            "300",
            "300.0000000000001",
            "360",
            "1.7976931348623157e308",
        ]
    ),
)


def _in_range(low: float, high: float) -> st.SearchStrategy[str]:
    """Number texts, mostly within ``[low, high]`` (written as Python, with a few more digits,
    or as an integer), sometimes anything (_NUMBER_TEXT)."""
    inside = st.floats(low, high)
    edges = st.sampled_from([low, high, low - 1e-9, high + 1e-9, low - 0.5, high + 0.5]).map(repr)
    return st.one_of(
        inside.map(repr),
        inside.map(repr),
        inside.map(lambda v: f"{v:.19g}"),
        st.integers(int(low), int(high)).map(str),
        edges,
        _NUMBER_TEXT,
    )


_VALID = {
    "truck_id": st.one_of(
        *[st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)] * 4, st.text(max_size=3)
    ).map(json.dumps),
    "ts": st.one_of(
        st.integers(NOW - 10**11, NOW + 400_000),
        st.integers(MIN_TS_MS - 1000, MIN_TS_MS + 1000),
        st.sampled_from([NOW + MAX_FUTURE_MS, NOW + MAX_FUTURE_MS + 1]),
    ).map(str),
    "lat": _in_range(-90, 90),
    "lng": _in_range(-180, 180),
    "speed_kph": _in_range(0, 300),
    "heading": _in_range(0, 360),
    "accuracy_m": _in_range(0, 10**6),
    "status": st.text(max_size=8).map(json.dumps),
}


@st.composite
def ping_records(draw: st.DrawFn, broken: bool = True) -> bytes:
    """Ping-like JSON objects: each field valid-looking, of another type, null or missing,
    sometimes with a field the contract does not name or a key twice, sometimes cut short;
    ``broken=False``: every field there and valid-looking (most are valid pings)."""
    parts = []
    for name, valid in _VALID.items():
        choice = (
            draw(st.sampled_from(["valid"] * 12 + ["other", "null", "missing"]))
            if broken
            else "valid"
        )
        if choice == "valid":
            parts.append(f'"{name}":{draw(valid)}')
        elif choice == "other":
            parts.append(f'"{name}":{json.dumps(draw(_ANY_VALUE))}')
        elif choice == "null":
            parts.append(f'"{name}":null')
    if draw(st.booleans()):
        extra = draw(
            st.sampled_from(
                [
                    '"extra":1',
                    '"extra":1e400',
                    '"x":"\\ud800"',
                    '"lat":"again"',
                    '"ts":1',
                    '"status":null',
                    '"extra":{"a":[1e400]}',
                ]
            )
        )
        parts.insert(draw(st.integers(0, len(parts))), extra)
    raw = ("{" + ",".join(parts) + "}").encode()
    if broken and draw(st.integers(0, 9)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


@pytest.mark.parametrize(
    "raw",
    [
        ping_bytes(lat=-90.5),
        ping_bytes(lat=90.000001),
        ping_bytes(lng=-180.5),
        ping_bytes(lng=180.000001),
        ping_bytes(lat=0, lng=0),
        ping_bytes(lat=-0.0, lng=0.0),
        ping_bytes(speed_kph=-0.5),
        ping_bytes(speed_kph=300.5),
        ping_bytes(heading=-1),
        ping_bytes(heading=360.5),
        ping_bytes(ts=MIN_TS_MS - 1),
        ping_bytes(ts=MIN_TS_MS),
        ping_bytes(ts=NOW + MAX_FUTURE_MS),
        ping_bytes(ts=NOW + MAX_FUTURE_MS + 1),
        ping_bytes(truck_id="T 1"),
        ping_bytes(truck_id="x" * 65),
        ping_bytes(ts=float(NOW)),
        ping_bytes(speed_kph=True),
        ping_bytes(status=7),
        ping_bytes()[:-1] + b',"extra":"\xff"}',  # not UTF-8, in a field the contract does not name
        ping_bytes()[:-1] + b',"extra":1e400}',
        ping_bytes()[:-1] + b',"extra":1}',
        b'{"truck_id":"T1","ts":1764099640123,"lat":1e400,"lng":2}',
        b" " * (64 * 1024) + ping_bytes(),
    ],
)
def test_the_fast_path_gives_the_full_validations_verdict_at_the_edges(raw: bytes) -> None:
    assert _same(parse_ping(raw, NOW), validate_ping(raw, NOW))


def _same(a: object, b: object) -> bool:
    """Equal, down to each value's type and the sign of a zero."""
    return type(a) is type(b) and repr(a) == repr(b)


@given(st.one_of(ping_records(), ping_records(broken=False)))
@settings(max_examples=500)
def test_the_fast_path_gives_the_full_validations_verdict(raw: bytes) -> None:
    assert _same(parse_ping(raw, NOW), validate_ping(raw, NOW))


@pytest.mark.parametrize(
    "raw",
    [
        ping_bytes(),
        b'{"truck_id":"T1","ts":1764099640123,"lat":40.5,"lng":-100.25}',
        b'{"lng":-100.25,"lat":40,"ts":1764099640123,"truck_id":"T1","heading":0,"speed_kph":0}',
    ],
)
def test_well_formed_pings_take_the_fast_path(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import udfs.ping_validation as module

    def no_slow_path(raw: bytes, now_ms: int) -> Ping | Rejection:
        raise AssertionError("took the full validation")

    expected = validate_ping(raw, NOW)
    monkeypatch.setattr(module, "validate_ping", no_slow_path)
    assert isinstance(expected, Ping) and _same(parse_ping(raw, NOW), expected)


def test_the_fast_path_decodes_the_fields_of_a_ping_and_no_others() -> None:
    """The wire struct and ``Ping`` declare the contract's fields twice (one decodes, one is
    the validated value); a field added to one only would send every record carrying it
    through the slow path, or drop it."""
    import dataclasses

    from udfs.ping_validation import _WirePing

    assert _WirePing.__struct_fields__ == tuple(f.name for f in dataclasses.fields(Ping))
