"""Hypothesis strategies for hostile `fleet.gps` and `fleet.scans` records (issue 27).

A record is built as JSON *text*, field by field, so it can hold what a producer may send but
Python's JSON encoders will not write: ``NaN``, ``Infinity``, ``1e400``, integers of 2^63 and
more, 400-digit integers, escaped lone surrogates, bytes that are not UTF-8, a key twice, a
record cut short. Each field is mostly a plausible value (so that many records are accepted
and the checks on accepted values have something to check) and otherwise anything.
"""

from __future__ import annotations

import json
import math
import string

from hypothesis import strategies as st

from udfs.models import ScanType
from udfs.ping_validation import MAX_TS_MS

NOW = 1_764_099_641_123
DAY_MS = 86_400_000
PROMISE_MS = 365 * DAY_MS
JAVA_LONG_MAX = 2**63 - 1
TRUCK_ID_CHARS = string.ascii_letters + string.digits + "_.-"
ID_CHARS = TRUCK_ID_CHARS + ":"


def _float_text(x: float) -> str:
    """A float as a JSON-ish token, non-finite ones in the spelling some encoders use."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


NUMBER_TOKENS: st.SearchStrategy[str] = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(_float_text),
    st.sampled_from(
        [
            "NaN",
            "-NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "-1e400",
            "1e-400",
            "-0",
            "-0.0",
            "0",
            "4.9e-324",
            "1.7976931348623157e308",
            "9007199254740993",
            str(JAVA_LONG_MAX),
            str(2**63),
            str(2**64 - 1),
            str(2**64),
            str(-(2**63)),
            str(-(2**63) - 1),
            "1" + "0" * 400,
            "-" + "9" * 400,
            "1764099641123.0",
            "1764099641123e0",
            "1.764099641123e12",
            "0x10",
            "01",
            "+1",
            ".5",
            "1.",
        ]
    ),
)
TEXT_TOKENS: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=80).map(json.dumps),
    st.text(max_size=20).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(
        [
            '"\\ud800"',
            '"\\udc00x"',
            '"\\u0000"',
            '"\\u202eT1"',
            '""',
            '"' + "x" * 70 + '"',
            '"' + "T" * 65 + '"',
            '"1764099641123"',
            '"47.6"',
        ]
    ),
)
ANY_TOKEN: st.SearchStrategy[str] = st.one_of(
    NUMBER_TOKENS,
    TEXT_TOKENS,
    st.sampled_from(
        [
            "true",
            "false",
            "null",
            "[]",
            "{}",
            "[1764099641123]",
            '{"$numberLong":"1764099641123"}',
            "[[[[[[[[[[]]]]]]]]]]",
        ]
    ),
)


# A field: its plausible values and how many times in ten it takes one (else any token).
Field = tuple[st.SearchStrategy[str], int]


def _float_in(low: float, high: float) -> st.SearchStrategy[str]:
    edges = [
        low,
        high,
        low / 2,
        high / 2,
        math.nextafter(high, math.inf),
        math.nextafter(low, -math.inf),
    ]
    return st.one_of(
        st.floats(low, high).map(repr),
        st.integers(int(low), int(high)).map(str),
        st.sampled_from(edges).map(repr),
    )


def _ident(alphabet: str) -> st.SearchStrategy[str]:
    """Ids of ``alphabet``, 1-64 chars (65 is among the tokens)."""
    return st.text(alphabet, min_size=1, max_size=64).map(json.dumps)


def _ts(now: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(now - 400 * DAY_MS, now + 10 * 60_000),
        st.sampled_from(
            [
                now + 5 * 60_000,
                now + 5 * 60_000 + 1,
                946_684_800_000,
                946_684_799_999,
                MAX_TS_MS,
                MAX_TS_MS + 1,
                JAVA_LONG_MAX,
                2**63,
                2**64 - 1,
            ]
        ),
    )


_TENTHS = st.sampled_from(range(10))  # Hypothesis favours the first choices: 0 is ordinary
_TWENTIETHS = st.sampled_from(range(20))


def _object_text(draw: st.DrawFn, fields: dict[str, Field]) -> bytes:
    """The fields as one JSON object, each a plausible value or any token; now and then one
    left out, a key twice or a stray one; sometimes cut short or with bytes that are not UTF-8
    spliced in."""
    parts = []
    for name, (plausible, weight) in fields.items():
        if draw(_TWENTIETHS) == 19:
            continue
        value = draw(plausible if draw(_TENTHS) < weight else ANY_TOKEN)
        parts.append(f'"{name}":{value}')
    if draw(_TENTHS) == 9:
        key = draw(st.sampled_from([*fields, "extra", ""]))
        parts.insert(draw(st.integers(0, len(parts))), f'"{key}":{draw(ANY_TOKEN)}')
    raw = ("{" + ",".join(parts) + "}").encode("utf-8", "surrogatepass")
    mangle = draw(_TWENTIETHS)
    if mangle == 19:
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mangle == 18:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


_LAT, _LNG = _float_in(-90.0, 90.0), _float_in(-180.0, 180.0)
_PING_FIELDS: dict[str, Field] = {
    "truck_id": (_ident(TRUCK_ID_CHARS), 9),
    "ts": (_ts(NOW).map(str), 9),
    "lat": (_LAT, 9),
    "lng": (_LNG, 9),
    "speed_kph": (_float_in(0.0, 300.0), 8),
    "heading": (_float_in(0.0, 360.0), 8),
    "accuracy_m": (_float_in(0.0, 1e6), 8),
    "status": (st.text(max_size=12).map(json.dumps), 8),
}
# The contract's types, and two it does not name (a type is a closed set: UNKNOWN_SCAN_TYPE).
_SCAN_TYPES = st.sampled_from([t.value for t in ScanType] + ["TELEPORTED", "picked_up"]).map(
    json.dumps
)


@st.composite
def ping_records(draw: st.DrawFn) -> bytes:
    """A hostile `fleet.gps` value (for a clock at :data:`NOW`)."""
    return _object_text(draw, _PING_FIELDS)


@st.composite
def scan_records(draw: st.DrawFn) -> bytes:
    """A hostile `fleet.scans` value (for a clock at :data:`NOW`); ``promised_by`` mostly
    near its own ``ts``, the 365-day limit's edges included, so promises are often accepted."""
    ts = draw(_ts(NOW))
    promise = st.one_of(
        st.integers(ts - PROMISE_MS - 2, ts + PROMISE_MS + 2),
        st.sampled_from(
            [
                ts + DAY_MS,
                ts + PROMISE_MS,
                ts - PROMISE_MS,
                ts,
                ts + PROMISE_MS + 1,
                ts - PROMISE_MS - 1,
            ]
        ),
    ).map(str)
    ids = _ident(ID_CHARS)
    return _object_text(
        draw,
        {
            "scan_id": (ids, 9),
            "shipment_id": (ids, 9),
            "type": (_SCAN_TYPES, 9),
            "ts": (st.just(str(ts)), 9),
            "truck_id": (ids, 9),
            "hub_id": (ids, 9),
            "lat": (_LAT, 9),
            "lng": (_LNG, 9),
            "promised_by": (promise, 9),
            "dest_lat": (_LAT, 9),
            "dest_lng": (_LNG, 9),
        },
    )


# Records the parsers accept, at the edges of every range: what reaches the state machines.

MIN_TS_MS = 946_684_800_000


def _legal_ts(draw: st.DrawFn, clock: int) -> int:
    latest = min(clock + 5 * 60_000, MAX_TS_MS)
    return draw(st.one_of(st.integers(MIN_TS_MS, latest), st.sampled_from([MIN_TS_MS, latest])))


def _legal(low: float, high: float) -> st.SearchStrategy[float]:
    return st.one_of(st.floats(low, high), st.sampled_from([low, high, -0.0]))


@st.composite
def legal_scan_records(draw: st.DrawFn, clock: int) -> bytes:
    """A `fleet.scans` value the parser accepts at ``clock``, its times and coordinates often
    at their limits (the earliest and latest ts, a promise 365 days either side)."""
    ts = _legal_ts(draw, clock)
    typ = draw(st.sampled_from(list(ScanType)))
    d: dict[str, object] = {
        "scan_id": draw(st.text(ID_CHARS, min_size=1, max_size=64)),
        "shipment_id": "S1",
        "type": typ.value,
        "ts": ts,
    }
    if typ is ScanType.PICKED_UP or draw(st.booleans()):
        offset = draw(
            st.one_of(
                st.integers(-PROMISE_MS, PROMISE_MS),
                st.sampled_from([-PROMISE_MS, PROMISE_MS, 1, DAY_MS]),
            )
        )
        d["promised_by"] = max(MIN_TS_MS, ts + offset)
    for name, value in (
        ("truck_id", st.sampled_from(["T1", "T2", "T" * 64])),
        ("hub_id", st.sampled_from(["H1", "h" * 64])),
    ):
        if draw(st.booleans()):
            d[name] = draw(value)
    for lat, lng in (("lat", "lng"), ("dest_lat", "dest_lng")):
        if draw(st.booleans()):
            d[lat], d[lng] = draw(_legal(-90.0, 90.0)), draw(_legal(-180.0, 180.0))
    return json.dumps(d).encode()


@st.composite
def legal_ping_records(draw: st.DrawFn, clock: int) -> bytes:
    """A `fleet.gps` value the parser accepts at ``clock``, with values at their limits."""
    d: dict[str, object] = {
        "truck_id": "T1",
        "ts": _legal_ts(draw, clock),
        "lat": draw(_legal(-90.0, 90.0)),
        "lng": draw(_legal(-180.0, 180.0)),
    }
    if d["lat"] == d["lng"] == 0.0:
        d["lat"] = 1.0  # (0, 0) is refused
    for name, high in (("speed_kph", 300.0), ("heading", 360.0), ("accuracy_m", 1e300)):
        if draw(st.booleans()):
            d[name] = draw(_legal(0.0, high))
    return json.dumps(d).encode()
