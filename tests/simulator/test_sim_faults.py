"""Each fault knob does what it says, and the truth logs it."""

from __future__ import annotations

import orjson
import pytest
from simtest_support import Run

from udfs.models import ScanType

pytestmark = pytest.mark.unit


def test_clean_run_has_no_faults(clean_run: Run) -> None:
    emits = [r.emit_ms for r in clean_run.records]
    assert emits == sorted(emits)
    values = [r.value for r in clean_run.records]
    assert len(set(values)) == len(values)
    assert not clean_run.truth.malformed and not clean_run.truth.late_records
    for r in clean_run.records:
        assert orjson.loads(r.value)["ts"] == r.emit_ms


def test_out_of_order_bounded(faulty_run: Run) -> None:
    f = faulty_run.config.faults
    late_keys = {(x["key"], x["ts"]) for x in faulty_run.truth.late_records}
    malformed = {m.raw for m in faulty_run.truth.malformed}
    behind = 0
    newest = 0
    for r in faulty_run.records:
        newest = max(newest, r.emit_ms)
        if r.topic == "gps" and r.value.decode() not in malformed:
            d = orjson.loads(r.value)
            if not isinstance(d.get("ts"), int) or (r.key.decode(), d["ts"]) in late_keys:
                continue
            if d["ts"] > newest + 10_000:
                continue  # future-timestamp fault
            lag = newest - d["ts"]
            assert lag <= (f.out_of_order_max_s + f.skew_max_s + 2) * 1000
            behind += lag > 0
    assert behind > 0 and faulty_run.truth.counts["out_of_order"] > 0


def test_duplicates_counted(faulty_run: Run) -> None:
    seen: dict[bytes, int] = {}
    for r in faulty_run.records:
        seen[r.value] = seen.get(r.value, 0) + 1
    dups = sum(n - 1 for n in seen.values())
    c = faulty_run.truth.counts
    assert dups == c["gps_duplicates"] + c["scans_duplicates"] > 0


def test_late_records_arrive_behind_the_watermark(faulty_run: Run) -> None:
    late = faulty_run.truth.late_records
    assert late
    for x in late:
        assert x["topic"] == "gps"
        assert x["emit_ms"] - x["ts"] >= 30_000 - 5_000  # minus clock skew


def test_every_malformed_record_is_sent_and_broken_as_labelled(faulty_run: Run) -> None:
    sent = {(r.topic, r.value.decode()) for r in faulty_run.records}
    reasons = set()
    for m in faulty_run.truth.malformed:
        assert (m.topic, m.raw) in sent
        reasons.add(m.reason)
        if m.reason == "MALFORMED_JSON":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(m.raw)
            continue
        d = orjson.loads(m.raw)
        required = (
            ("truck_id", "ts", "lat", "lng")
            if m.topic == "gps"
            else ("scan_id", "shipment_id", "type", "ts")
        )
        if m.reason == "MISSING_FIELD":
            assert any(k not in d for k in required)
        elif m.reason == "BAD_COORDINATES":
            assert not (-90 <= d["lat"] <= 90 and -180 <= d["lng"] <= 180) or (
                d["lat"] == 0 and d["lng"] == 0
            )
        elif m.reason == "IMPOSSIBLE_SPEED":
            assert abs(d["lat"]) <= 90  # valid on its own: only the jump is wrong
        elif m.reason == "FUTURE_TIMESTAMP":
            assert d["ts"] > faulty_run.truth.end_ms + 300 * 86_400_000
        elif m.reason == "UNKNOWN_SCAN_TYPE":
            assert d["type"] not in set(ScanType)
        elif m.reason == "BAD_TYPE":
            assert any(isinstance(d.get(k), str) for k in ("lat", "ts"))
        else:
            raise AssertionError(m.reason)
    assert {
        "MALFORMED_JSON",
        "MISSING_FIELD",
        "BAD_COORDINATES",
        "IMPOSSIBLE_SPEED",
        "FUTURE_TIMESTAMP",
        "UNKNOWN_SCAN_TYPE",
    } <= reasons


def test_impossible_jump_implies_more_than_250_kmh(faulty_run: Run) -> None:
    from simulator.geo import haversine_m

    jumps = {m.raw for m in faulty_run.truth.malformed if m.reason == "IMPOSSIBLE_SPEED"}
    bad = {m.raw for m in faulty_run.truth.malformed}
    clean = sorted(
        (
            orjson.loads(r.value)
            for r in faulty_run.records
            if r.topic == "gps" and r.value.decode() not in bad
        ),
        key=lambda d: d["ts"],
    )
    assert clean
    by_truck: dict[str, list[dict]] = {}
    for d in clean:
        by_truck.setdefault(d["truck_id"], []).append(d)
    for raw in jumps:
        j = orjson.loads(raw)
        prev = max((p for p in by_truck[j["truck_id"]] if p["ts"] < j["ts"]), key=lambda p: p["ts"])
        kmh = (
            haversine_m(prev["lat"], prev["lng"], j["lat"], j["lng"])
            / 1000
            / ((j["ts"] - prev["ts"]) / 3_600_000)
        )
        assert kmh > 250


def test_clock_skew_within_bound(faulty_run: Run) -> None:
    bound = faulty_run.config.faults.skew_max_s * 1000
    skewed = set()
    malformed = {m.raw for m in faulty_run.truth.malformed}
    late = {(x["key"], x["ts"]) for x in faulty_run.truth.late_records}
    for r in faulty_run.records:
        if r.topic != "gps" or r.value.decode() in malformed:
            continue
        d = orjson.loads(r.value)
        if (d["truck_id"], d["ts"]) in late:
            continue
        off = d["ts"] - r.emit_ms
        assert off <= bound + 1
        if off > 0:
            skewed.add(d["truck_id"])
    assert skewed
