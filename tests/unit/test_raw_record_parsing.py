"""The parse step both jobs share: bytes of a RAW_RECORD row in, a value or a dead letter out,
whatever the bytes or the parser do."""

from __future__ import annotations

import orjson
import pytest
from pyflink.common import Row

from flink_jobs.runtime.records import parse_raw_record, rejection_row
from udfs.models import Ping, Reason, Rejection
from udfs.ping_validation import parse_ping

pytestmark = pytest.mark.unit
NOW = 1_780_000_000_000


def test_a_valid_record_parses_against_the_clock_given() -> None:
    now = NOW
    value = Row(
        orjson.dumps({"truck_id": "T1", "ts": now - 1000, "lat": 47.6, "lng": -122.3}), 3, 17
    )
    raw, result = parse_raw_record(parse_ping, value, now)
    assert raw == value[0]
    assert isinstance(result, Ping) and result.truck_id == "T1" and result.ts == now - 1000


def test_a_record_from_the_future_is_rejected_by_the_clock_given() -> None:
    future = NOW + 3_600_000
    value = Row(orjson.dumps({"truck_id": "T1", "ts": future, "lat": 47.6, "lng": -122.3}), 0, 0)
    _, result = parse_raw_record(parse_ping, value, NOW)
    assert isinstance(result, Rejection) and result.reason is Reason.FUTURE_TIMESTAMP
    # the same record, judged an hour and a half later, is in time
    _, later = parse_raw_record(parse_ping, value, NOW + 5_400_000)
    assert isinstance(later, Ping)


def test_a_null_value_and_a_crashing_parser_become_rejections() -> None:
    raw, result = parse_raw_record(parse_ping, Row(None, 0, 5), NOW)
    assert raw == b"" and isinstance(result, Rejection)

    def broken(raw: bytes, now_ms: int) -> Ping:
        raise RuntimeError("bug")

    _, result = parse_raw_record(broken, Row(b"{}", 0, 6), NOW)
    assert isinstance(result, Rejection) and result.reason is Reason.MALFORMED_JSON
    assert "RuntimeError('bug')" in result.detail


def test_the_dead_letter_keeps_topic_partition_offset_reason_and_bytes() -> None:
    value = Row(b"\xff not json", 2, 41)
    raw, result = parse_raw_record(parse_ping, value, NOW)
    assert isinstance(result, Rejection)
    row = rejection_row("fleet.gps", value, raw, result, NOW + 7)
    letter = orjson.loads(row[1])
    assert row[0] == "fleet.gps"
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == ("fleet.gps", 2, 41)
    assert letter["reason"] == result.reason.value == "MALFORMED_JSON"
    assert letter["raw_encoding"] == "base64"
    assert letter["ts"] == NOW + 7
