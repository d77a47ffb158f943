"""The delay job on a MiniCluster: bounded, out-of-order scans (and pings) at parallelism 2,
every pattern with its resolve, escalation, CEP attempts, DLQ, duplicates and negatives."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from typing import Any

import orjson
import pytest

from udfs.models import ScanType
from udfs.shipment_state import DelayCleared, DelayScore, RegionDelayHours, RegionShipmentCounted

from .helpers import CFG, HOUR, MIN, PDX, SEA, T0, at_risk_model, scan, stop_and_go_pings

pytestmark = pytest.mark.flink

OUT_OF_ORDER_MS = 4 * HOUR  # input below is shuffled within this bound


def s(sid: str, n: int, typ: str, ts: int, **kw: Any) -> dict[str, Any]:
    d = {"scan_id": f"{sid}-{n}", "shipment_id": sid, "type": typ, "ts": ts}
    if typ == "PICKED_UP":
        d.update(
            {
                "lat": SEA[0],
                "lng": SEA[1],
                "dest_lat": PDX[0],
                "dest_lng": PDX[1],
                "promised_by": T0 + 100 * HOUR,
            }
        )
    d.update(kw)
    return d


def scenario() -> tuple[list[bytes], list[bytes]]:
    scans = [
        # late by 3 h: escalates 1 -> 2 -> 3, resolves on delivery, adds 3 h to WEST
        s("LATE", 1, "PICKED_UP", T0, promised_by=T0 + 2 * HOUR),
        s("LATE", 2, "DELIVERED", T0 + 5 * HOUR),
        # delivered a minute early: nothing
        s("EARLY", 1, "PICKED_UP", T0, promised_by=T0 + 2 * HOUR),
        s("EARLY", 2, "DELIVERED", T0 + 2 * HOUR - MIN),
        # 7 h at a hub
        s("STUCK", 1, "PICKED_UP", T0),
        s("STUCK", 2, "ARRIVED_HUB", T0 + HOUR, hub_id="HUB-PDX"),
        s("STUCK", 3, "DEPARTED_HUB", T0 + 8 * HOUR, hub_id="HUB-PDX"),
        s("STUCK", 4, "DELIVERED", T0 + 9 * HOUR),
        # silent for 28 h
        s("QUIET", 1, "PICKED_UP", T0),
        s("QUIET", 2, "OUT_FOR_DELIVERY", T0 + 30 * HOUR),
        s("QUIET", 3, "DELIVERED", T0 + 31 * HOUR),
        # two failed attempts 20 h apart (CEP), then delivered; DELIVERED arrives first
        s("FAIL", 1, "PICKED_UP", T0),
        s("FAIL", 2, "OUT_FOR_DELIVERY", T0 + 2 * HOUR),
        s("FAIL", 3, "DELIVERY_ATTEMPT_FAILED", T0 + 3 * HOUR),
        s("FAIL", 4, "OUT_FOR_DELIVERY", T0 + 22 * HOUR),
        s("FAIL", 5, "DELIVERY_ATTEMPT_FAILED", T0 + 23 * HOUR),
        s("FAIL", 6, "DELIVERED", T0 + 24 * HOUR),
        # failed attempts 50 h apart: not a pattern (scans keep it from going quiet)
        s("SLOW", 1, "PICKED_UP", T0),
        s("SLOW", 2, "DELIVERY_ATTEMPT_FAILED", T0 + HOUR),
        s("SLOW", 3, "ARRIVED_HUB", T0 + 20 * HOUR),
        s("SLOW", 4, "DEPARTED_HUB", T0 + 21 * HOUR),
        s("SLOW", 5, "OUT_FOR_DELIVERY", T0 + 40 * HOUR),
        s("SLOW", 7, "DELIVERY_ATTEMPT_FAILED", T0 + 51 * HOUR),
        s("SLOW", 6, "DELIVERED", T0 + 52 * HOUR),
        # two failed attempts that validation rejects (coordinates out of range): dead letters
        # and nothing else, so no pattern (the pattern once read the raw topic)
        s("BADFAIL", 1, "PICKED_UP", T0),
        s("BADFAIL", 2, "DELIVERY_ATTEMPT_FAILED", T0 + 3 * HOUR, lat=91.0, lng=0.0),
        s("BADFAIL", 3, "DELIVERY_ATTEMPT_FAILED", T0 + 5 * HOUR, lat=91.0, lng=0.0),
        s("BADFAIL", 4, "DELIVERED", T0 + 6 * HOUR),
        # truck T9 crawls at ~10 km/h, 235 km from the destination, 3 h to go: at risk
        s("RISK", 1, "PICKED_UP", T0, promised_by=T0 + 3 * HOUR, truck_id="T9"),
        s("RISK", 2, "DELIVERED", T0 + 2 * HOUR),
        # truck T7 drives 20 min, stops 20 min, and so on: the ETA swings across the promise
        # (the old rule paged 5 times), one page now (issue 29)
        s("FLAP", 1, "PICKED_UP", T0, promised_by=T0 + 270 * MIN, truck_id="T7"),
        s("FLAP", 2, "DELIVERED", T0 + 250 * MIN, truck_id="T7"),
    ]
    dup = dict(scans[0])
    raws = [orjson.dumps(x) for x in scans] + [orjson.dumps(dup)]
    raws += [
        b'{"scan_id": "X-1", "shipment_id": "X", "type": "TELEPORTED", "ts": %d}' % T0,
        b"not json",
    ]
    pings = [
        orjson.dumps(
            {
                "truck_id": "T9",
                "ts": T0 + k * MIN,
                "lat": SEA[0] + k * 0.0015,
                "lng": SEA[1],
                "speed_kph": 10.0,
            }
        )
        for k in range(0, 60, 2)
    ]
    pings += [orjson.dumps(p) for p in stop_and_go_pings("T7", T0, 4)]
    return raws, pings


def shuffle_within(raws: list[bytes], bound_ms: int, seed: int) -> list[bytes]:
    """Out of order, but never by more than ``bound_ms`` (what the watermark allows)."""
    rng = random.Random(seed)

    def ts(r: bytes) -> int:
        try:
            return int(orjson.loads(r)["ts"])
        except Exception:  # noqa: BLE001
            return T0

    return sorted(raws, key=lambda r: ts(r) + rng.uniform(0, bound_ms * 0.9))


def run_job(scans: list[bytes], pings: list[bytes], pings_first: bool = False) -> list[str]:
    """Run the job on bounded sources; ``pings_first``: no scan is read before every ping has
    been (tests.delay.arrival_gate), as when a `fleet.gps` backlog is read ahead of scans."""
    from pyflink.common import Duration, Row, WatermarkStrategy
    from pyflink.common.watermark_strategy import TimestampAssigner

    from flink_jobs.delay.job import build
    from flink_jobs.delay.settings import DelaySettings
    from flink_jobs.runtime.environment import create_environment
    from flink_jobs.runtime.records import RAW_RECORD

    class JsonTs(TimestampAssigner):
        def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
            try:
                return int(orjson.loads(bytes(value[0]))["ts"])
            except Exception:  # noqa: BLE001
                return 0

    # the delay job's own bound on a scan's age (its default, max_record_age_s): from_collection
    # splits the rows over two source subtasks, so they arrive up to two days out of order here
    # (bounded: no refresh, so the effects are exactly the changes)
    settings = DelaySettings(
        parallelism=2, bootstrap="127.0.0.1:1", fix_interval_s=600, bounded=True
    )
    # Failed attempts from MATCH_RECOGNIZE only, so this test proves the CEP operator fires.
    cfg = replace(settings.delay_config, attempts_from_scans=False)
    env, t_env = create_environment(settings, "delay-test")
    wms = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(OUT_OF_ORDER_MS)
    ).with_timestamp_assigner(JsonTs())

    token, n_pings = uuid.uuid4().hex, len(pings)

    def gate(row: Row, role: str) -> Row:
        import importlib

        g = importlib.import_module("tests.delay.arrival_gate")
        return g.count(token, row) if role == "pings" else g.wait_for(token, n_pings, row)

    def source(raws: list[bytes], role: str = ""):  # type: ignore[no-untyped-def]
        rows = [Row(r, 0, i, None) for i, r in enumerate(raws)]
        stream = env.from_collection(rows, type_info=RAW_RECORD)
        if pings_first and role == "scans":  # held back before its watermarks are made
            stream = stream.map(lambda r: gate(r, "scans"), output_type=RAW_RECORD).set_parallelism(
                1
            )
        stream = stream.assign_timestamps_and_watermarks(wms).set_parallelism(1)
        if pings_first and role == "pings":
            stream = stream.map(lambda r: gate(r, "pings"), output_type=RAW_RECORD).set_parallelism(
                1
            )
        return stream

    from pyflink.common import Types

    # keyed by Kafka partition, as flink_jobs.delay.job.read_scans keys them
    scan_stream = source(scans, "scans").key_by(lambda r: str(r[1]), key_type=Types.STRING())
    out = build(t_env, scan_stream, source(pings, "pings") if pings else None, settings, cfg)
    merged = (
        out["alerts"]
        .map(lambda r: "A " + r[1], output_type=Types.STRING())
        .union(
            out["dlq"].map(lambda r: "D " + r[1], output_type=Types.STRING()),
            out["effects"].map(lambda e: "E " + repr(e), output_type=Types.STRING()),
        )
    )
    with merged.execute_and_collect() as results:
        return list(results)


@pytest.mark.timeout(300)
def test_delay_job_end_to_end_on_minicluster() -> None:
    scans, pings = scenario()
    lines = run_job(shuffle_within(scans, OUT_OF_ORDER_MS, seed=7), pings)
    alerts = sorted(
        (
            a["dedup_key"],
            a["event_action"],
            a["payload"]["severity"],
            a["payload"]["custom_details"]["event_ts"] - T0,
        )
        for a in (orjson.loads(x[2:]) for x in lines if x.startswith("A "))
    )
    at_risk = [a for a in alerts if a[0].startswith("shipment_at_risk:")]
    others = [a for a in alerts if not a[0].startswith("shipment_at_risk:")]
    assert others == sorted(
        [
            ("shipment_late:LATE", "trigger", "info", 2 * HOUR + 1),
            ("shipment_late:LATE", "trigger", "warning", 2 * HOUR + 30 * MIN + 1),
            ("shipment_late:LATE", "trigger", "error", 4 * HOUR + 1),
            ("shipment_late:LATE", "resolve", "error", 5 * HOUR),
            ("shipment_stuck_at_hub:STUCK", "trigger", "warning", 7 * HOUR),
            ("shipment_stuck_at_hub:STUCK", "resolve", "warning", 8 * HOUR),
            ("shipment_no_scan:QUIET", "trigger", "error", 24 * HOUR),
            ("shipment_no_scan:QUIET", "resolve", "error", 30 * HOUR),
            ("delivery_attempts_failed:FAIL", "trigger", "error", 23 * HOUR),
            ("delivery_attempts_failed:FAIL", "resolve", "error", 24 * HOUR),
        ]
    )
    assert [(a[0], a[1]) for a in at_risk if a[0].endswith(":RISK")] == [
        ("shipment_at_risk:RISK", "resolve"),
        ("shipment_at_risk:RISK", "trigger"),
    ]
    flap = [
        scan("FLAP", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 270 * MIN, truck_id="T7"),
        scan("FLAP", 2, ScanType.DELIVERED, T0 + 250 * MIN, truck_id="T7"),
    ]
    model = at_risk_model(flap, stop_and_go_pings("T7", T0, 4), CFG, T0 + 5 * HOUR, 600)
    assert [a for a, _ in model] == ["trigger", "resolve"]
    assert sorted((a[1], a[3]) for a in at_risk if a[0].endswith(":FLAP")) == sorted(
        (action, ts - T0) for action, ts in model
    )
    effects = sorted(x[2:] for x in lines if x.startswith("E "))
    assert effects == sorted(
        [
            repr(RegionShipmentCounted("WEST", sid))
            for sid in (
                "LATE",
                "EARLY",
                "STUCK",
                "QUIET",
                "FAIL",
                "SLOW",
                "RISK",
                "BADFAIL",
                "FLAP",
            )
        ]
        + [repr(DelayScore("LATE", n)) for n in (1, 2, 3)]
        + [repr(DelayCleared("LATE")), repr(RegionDelayHours("WEST", "LATE", 3.0))]
    )
    dlq = sorted(orjson.loads(x[2:])["reason"] for x in lines if x.startswith("D "))
    assert dlq == ["BAD_COORDINATES", "BAD_COORDINATES", "MALFORMED_JSON", "UNKNOWN_SCAN_TYPE"]


@pytest.mark.timeout(300)
def test_at_risk_is_raised_when_every_ping_is_read_before_the_scans() -> None:
    """A `fleet.gps` backlog read ahead of `fleet.scans`: the truck feed holds the pings until
    the watermark (the scans' too) passes them, so the shipment still gets the fixes from
    before its deadline. Applied in arrival order, it got only the truck's last ping, after the
    deadline, and no warning (the CI failure with recall 0.667 for shipment_at_risk)."""
    promised = T0 + 3 * HOUR
    scans = [
        orjson.dumps(s("RISK", 1, "PICKED_UP", T0, promised_by=promised, truck_id="T9")),
        orjson.dumps(s("RISK", 2, "DELIVERED", T0 + 7 * HOUR)),
    ]
    # crawling north at ~10 km/h, 235 km from the destination; pings from before the pick-up
    # to well after the deadline
    pings = [
        orjson.dumps(
            {
                "truck_id": "T9",
                "ts": T0 + k * 5 * MIN,
                "lat": SEA[0] + k * 0.0075,
                "lng": SEA[1],
                "speed_kph": 10.0,
            }
        )
        for k in range(-6, 73)
    ]
    lines = run_job(scans, pings, pings_first=True)
    alerts = [orjson.loads(x[2:]) for x in lines if x.startswith("A ")]
    at_risk = sorted(
        (a["event_action"], a["payload"]["custom_details"]["event_ts"])
        for a in alerts
        if a["payload"]["class"] == "shipment_at_risk"
    )
    assert [a for a, _ in at_risk] == ["resolve", "trigger"]
    trigger_ts = dict(at_risk)["trigger"]
    assert trigger_ts <= promised
    assert any(a["dedup_key"] == "shipment_late:RISK" for a in alerts)
