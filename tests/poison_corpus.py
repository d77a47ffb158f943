"""Poison records for every reader of a topic: ``(name, kafka_key, value)`` triples that no
reader may crash, stop or loop on (issue 27). Generic, not specific to one topic: each value is
invalid as a GPS ping, a scan event and an alert event alike, so every reader dead-letters every
one of them, and a test can expect exactly one dead letter per record.

Deterministic (seeded): the same bytes on every run, so a failure names a record that can be
sent again. Every value stays below 1,000,000 bytes and every key plus value below 1 MiB: a
producer with librdkafka's ``message.max.bytes`` raised to
``udfs.models.DEAD_LETTER_PRODUCER_MAX_BYTES`` sends each one, and a broker at Kafka's default
record limit (1,048,588 bytes) takes it.
"""

from __future__ import annotations

import random

NEAR_MAX_VALUE_BYTES = 999_000  # near the broker's default record limit, below librdkafka's
TS = 1_764_099_641_123  # a plausible ping time, so records fail on what they are built to test
DEEP = 100_000  # far past every JSON parser's nesting limit (orjson: 1024, Jackson: 1000)
DEEP_PARSEABLE = 1000  # parses with orjson, but repr()/str() of it recurses past Python's limit


def _ping_shaped(
    truck_id_json: bytes, ts: bytes = b"1764099641123", lat: bytes = b"47.6", lng: bytes = b"-122.3"
) -> bytes:
    """A GPS ping with the given JSON texts: invalid as a scan (no scan_id) and as an alert (no
    event_action) whatever they are, invalid as a ping by what is passed in."""
    return (
        b'{"truck_id":'
        + truck_id_json
        + b',"ts":'
        + ts
        + b',"lat":'
        + lat
        + b',"lng":'
        + lng
        + b',"speed_kph":50}'
    )


def _huge_json(rng: random.Random) -> bytes:
    head = b'{"truck_id":"T00042","ts":1764099641123,"lat":47.6,"lng":-122.3,"note":"'
    filler = NEAR_MAX_VALUE_BYTES - len(head) - 2
    letters = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(64))
    return head + (letters * (filler // 64 + 1))[:filler] + b'"}'


def _deep_values() -> bytes:
    """Every id, time and number field of the three record kinds a 1000-deep array: parses, but
    a reader that puts a field's repr() into a message recurses past Python's limit."""
    deep = b"[" * DEEP_PARSEABLE + b"]" * DEEP_PARSEABLE
    fields = (
        "truck_id",
        "shipment_id",
        "scan_id",
        "type",
        "ts",
        "lat",
        "lng",
        "event_action",
        "dedup_key",
        "payload",
        "severity",
    )
    return b"{" + b",".join(b'"' + f.encode() + b'":' + deep for f in fields) + b"}"


def _values(rng: random.Random) -> list[tuple[str, bytes]]:
    """Named values, for a key of their own each (see :func:`poison_records`)."""
    return [
        # size
        ("huge_json_string", _huge_json(rng)),
        ("huge_random_bytes", rng.randbytes(NEAR_MAX_VALUE_BYTES)),
        ("empty_value", b""),
        # bytes that are not text
        ("control_bytes", bytes(range(32)) + b"\x7f"),
        ("nul_bytes", b"\x00" * 1024),
        ("binary_random", rng.randbytes(4096)),
        ("invalid_utf8_in_json", b'{"truck_id":"T\xff\xfe\xc3\x28","ts":1764099641123}'),
        ("overlong_utf8", b'{"truck_id":"\xc0\xaf"}'),
        ("utf8_bom", b'\xef\xbb\xbf{"truck_id":"T1"}'),
        ("raw_control_in_string", b'{"truck_id":"T\x00\x1b[31m1"}'),
        ("ansi_escape_text", b"\x1b[2J\x1b[31mred alert\x1b[0m\r\n\x07"),
        ("trailing_garbage", b'{"truck_id":"T1"} {"truck_id":"T2"}'),
        ("truncated_json", b'{"truck_id":"T1","ts":17640996'),
        # nesting
        ("deep_arrays", b"[" * DEEP + b"]" * DEEP),
        ("deep_objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
        ("deep_values", _deep_values()),
        # numbers
        ("nan_literal", _ping_shaped(b'"T1"', lat=b"NaN")),
        ("infinity_literals", _ping_shaped(b'"T1"', lat=b"Infinity", lng=b"-Infinity")),
        ("number_1e400", _ping_shaped(b'"T1"', ts=b"1e400", lat=b"1e400", lng=b"-1e400")),
        ("int_400_digits", _ping_shaped(b'"T1"', ts=b"1" + b"0" * 400)),
        ("int_2_63_minus_1", _ping_shaped(b'"T1"', ts=str(2**63 - 1).encode())),
        ("int_2_63", _ping_shaped(b'"T1"', ts=str(2**63).encode(), lat=str(2**63).encode())),
        ("int_2_64", _ping_shaped(b'"T1"', ts=str(2**64).encode(), lng=str(2**64).encode())),
        ("int_minus_2_63_minus_1", _ping_shaped(b'"T1"', ts=str(-(2**63) - 1).encode())),
        # JSON that is not an object
        ("json_array", b'[{"truck_id":"T1","ts":1764099641123,"lat":47.6,"lng":-122.3}]'),
        ("json_string", b'"T00042"'),
        ("json_number", b"42"),
        ("json_null", b"null"),
        ("json_true", b"true"),
        # hostile ids
        ("id_rtl_override", _ping_shaped('"\u202eT00042"'.encode())),
        ("id_zero_width", _ping_shaped('"T00\u200b042"'.encode())),
        ("id_10000_chars", _ping_shaped(b'"' + b"T" * 10_000 + b'"')),
        ("id_lone_high_surrogate", _ping_shaped(b'"T\\ud800"')),
        ("id_lone_low_surrogate", _ping_shaped(b'"\\udc00T"')),
        ("id_escaped_nul_and_ansi", _ping_shaped(b'"T\\u0000\\u001b[31m1"')),
        ("id_300kb_multibyte", _ping_shaped(('"' + "\U0001d54b" * 75_000 + '"').encode())),
        ("id_combining_marks", _ping_shaped(('"T' + "\u0301" * 2000 + '"').encode())),
        ("id_not_a_string", _ping_shaped(b'{"$ne":null}')),
    ]


def poison_records() -> list[tuple[str, bytes | None, bytes]]:
    """``(name, kafka_key, value)`` for each poison record, in a fixed order with unique names.

    Keys vary too: none, text, and two poison keys (100,000 bytes, and every byte value) on
    small values, so a reader's handling of the key is tested apart from the value's."""
    rng = random.Random(27)
    records: list[tuple[str, bytes | None, bytes]] = []
    for i, (name, value) in enumerate(_values(rng)):
        key = None if i % 3 == 0 else f"poison-{name}".encode()
        records.append((name, key, value))
    records.append(
        ("key_100000_bytes", b"K" * 50_000 + rng.randbytes(50_000), b'{"truck_id":"T1"}')
    )
    records.append(("key_binary", bytes(range(256)), b"{}"))
    records.append(("key_hostile_unicode", "\u202e\u200bT1\u0000".encode(), b"[]"))
    return records
