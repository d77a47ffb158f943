"""The contract in code (udfs.contract): the committed JSON Schemas are what the code generates,
the records the product itself makes validate against them, and broken records do not."""

from __future__ import annotations

import json
import re
from collections.abc import Hashable
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import shapely
from hypothesis import given, settings
from jsonschema import Draft202012Validator

from alerting import records as alert_records
from alerting.dead_letters import dead_letter
from alerting.kafka_io import InRecord
from flink_jobs.tracking.redis_writer import region_count_fields
from simulator import geo as sim_geo
from simulator.config import Faults, SimConfig
from simulator.fleet import GPS, FleetSimulator
from tests.unit.hostile_records import NOW, ping_records, scan_records
from udfs import geo
from udfs import shipment_state as ss
from udfs import truck_state as ts
from udfs.contract import (
    DEFAULT_TOPICS,
    POSITION_FIELDS,
    REGION_FIELDS,
    TopicNames,
    contract_topics,
    delay_account_key,
    delay_member,
    region_key,
    shipment_of_delay_member,
    truck_key,
)
from udfs.contract.__main__ import main as contract_cli
from udfs.contract.records import ALERT_CLASSES, PingRecord
from udfs.contract.schemas import RECORDS, json_schema, stale_schemas
from udfs.contract.websocket import (
    CENSUS_REGIONS,
    MAX_FILTER_TRUCK_IDS,
    MAX_SUBSCRIPTION_ID,
    SubscriptionFilter,
)
from udfs.models import (
    AlertEvent,
    DeadLetter,
    GeofenceTransition,
    Ping,
    Reason,
    Rejection,
    Scan,
    ScanType,
)
from udfs.ping_validation import parse_ping
from udfs.scan_validation import parse_scan
from ws_gateway import ClientError, frames, server
from ws_gateway.filters import FILTER_KEYS, MAX_TRUCK_IDS, parse_bbox, parse_filter
from ws_gateway.geo import Area
from ws_gateway.router import Router, Subscription, decode_truck

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = ROOT / "docs" / "schemas"
T0 = 1_764_099_641_123
HUB = (47.6062, -122.3321)


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(name: str, record: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(record)]


def assert_valid(name: str, records: list[Any]) -> None:
    assert records
    bad = [(r, errors(name, r)) for r in records if errors(name, r)]
    assert bad == []


# -- (a) the committed files are the generated ones -------------------------------------------
def test_the_committed_schemas_are_what_the_code_generates() -> None:
    assert stale_schemas(SCHEMAS_DIR) == [], "run: python -m udfs.contract --write docs/schemas"
    committed = {p.name for p in SCHEMAS_DIR.glob("*.json")}
    assert committed == {f"{name}.schema.json" for name in RECORDS}


def test_the_command_writes_and_checks_the_files(tmp_path: Path) -> None:
    assert contract_cli(["--write", str(tmp_path)]) == 0
    for path in tmp_path.iterdir():
        assert path.read_text() == (SCHEMAS_DIR / path.name).read_text()
    assert contract_cli(["--check", str(tmp_path)]) == 0
    (tmp_path / "gps-ping.schema.json").write_text("{}\n")
    assert contract_cli(["--check", str(tmp_path)]) == 1


@pytest.mark.parametrize("name", RECORDS)
def test_every_schema_is_a_draft_2020_12_schema(name: str) -> None:
    schema = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


# -- the contract's own examples ---------------------------------------------------------------
def contract_examples() -> dict[str, list[Any]]:
    """The JSON examples of docs/contract.md by schema; lines with placeholders are left out."""
    text = (ROOT / "docs" / "contract.md").read_text()
    by_heading = {
        "GPS ping": "gps-ping",
        "Scan event": "scan-event",
        "Alert event": "alert-event",
        "Geofence transition": "geofence-event",
        "Dead letter": "dead-letter",
    }
    found: dict[str, list[Any]] = {}
    for heading, block in re.findall(r"### ([^(\n]+?) \(.*?\n```json\n(.*?)```", text, re.S):
        found.setdefault(by_heading[heading], []).append(json.loads(block))
    ws = text.split("## Websocket protocol")[1]
    client, server_side = re.findall(r"```json\n(.*?)```", ws, re.S)[:2]
    for name, block in (("ws-client-frame", client), ("ws-server-frame", server_side)):
        found[name] = [json.loads(x) for x in block.splitlines() if x and "..." not in x]
    return found


def test_the_contracts_examples_validate() -> None:
    examples = contract_examples()
    assert set(examples) == set(RECORDS)
    # the dead letter's example predates its amendment of 2026-12-07 (always-present fields)
    amended = {"raw_size": 64, "raw_sha256": "0" * 64, "raw_truncated": False, "key": "T00042"}
    examples["dead-letter"] = [{**d, **amended} for d in examples["dead-letter"]]
    for name, records in examples.items():
        assert_valid(name, records)


# -- (b) records made by the product's own code ------------------------------------------------
@pytest.fixture(scope="module")
def simulated() -> dict[str, list[Any]]:
    """A fault-free simulated day of six trucks, as the simulator's record builders encode it."""
    sim = FleetSimulator(SimConfig(trucks=6, seed=4, start_ms=T0, faults=Faults.none()))
    out: dict[str, list[Any]] = {"gps-ping": [], "scan-event": []}
    for rec in sim.clean(26 * 3600):
        out["gps-ping" if rec.topic == GPS else "scan-event"].append(orjson.loads(rec.value))
    return out


def test_simulated_pings_validate(simulated: dict[str, list[Any]]) -> None:
    assert_valid("gps-ping", simulated["gps-ping"][::7])  # every 7th: validation is slow


def test_simulated_scans_validate(simulated: dict[str, list[Any]]) -> None:
    scans = simulated["scan-event"]
    assert {s["type"] for s in scans} >= {"PICKED_UP", "DEPARTED_HUB", "ARRIVED_HUB", "DELIVERED"}
    assert_valid("scan-event", scans)


def tracking_outputs() -> list[Any]:
    """The tracking state machine's outputs for a truck that enters and leaves a hub, falls
    silent (offline) and then stops off the hubs (unplanned stop)."""
    cfg, state, counters = ts.TrackingConfig(), ts.TruckState("T00042"), ts.Counters()

    def fences(lat: float, lng: float) -> list[str]:
        return ["HUB-SEA"] if geo.haversine_m(lat, lng, *HUB) < 2000 else []

    fixes = [(T0 + i * 30_000, HUB[0] + max(0, i - 2) * 0.005, 60.0) for i in range(8)]
    silent_until = fixes[-1][0] + 15 * 60_000
    fixes += [(silent_until + i * 60_000, fixes[-1][1], 0.0) for i in range(45)]
    out: list[Any] = []
    for t, lat, speed in fixes:
        ping = Ping("T00042", t, lat, HUB[1], speed, 0.0, 5.0, "IN_TRANSIT")
        out += ts.on_ping(state, ping, cfg, lambda _lat, _lng: "WEST", counters)
        out += ts.advance(state, t, cfg, fences)
    return out + ts.advance(state, fixes[-1][0] + 3_600_000, cfg, fences)


def shipment_outputs() -> list[Any]:
    """The delay state machine's outputs: a shipment late to every severity, then delivered,
    and one picked up without a truck (no position, truck_id null)."""
    cfg = ss.DelayConfig(region_of=lambda _lat, _lng: "WEST")
    out: list[Any] = []
    late = [
        Scan("SC-1", "S00017", ScanType.PICKED_UP, T0, "T00042", "HUB-SEA", *HUB, T0 + 3_600_000),
        Scan("SC-2", "S00017", ScanType.DELIVERED, T0 + 40 * 3_600_000, lat=45.52, lng=-122.68),
    ]
    loose = [Scan("SC-3", "S00018", ScanType.PICKED_UP, T0, promised_by=T0 + 60_000)]
    for scans in (late, loose):
        state = None
        for scan in scans:
            state, got = ss.step(state, scan, cfg)
            out += got
        assert state is not None
        out += ss.advance(state, T0 + 50 * 3_600_000, cfg)[1]
    return out


def test_alerts_of_both_jobs_validate() -> None:
    alerts = [o for o in tracking_outputs() + shipment_outputs() if isinstance(o, AlertEvent)]
    classes = {a.alert_class for a in alerts}
    assert {"truck_offline", "truck_stopped_unplanned", "shipment_late"} <= classes
    assert {"trigger", "resolve"} <= {a.event_action for a in alerts}
    assert_valid("alert-event", [orjson.loads(a.to_json()) for a in alerts])


def test_geofence_transitions_validate() -> None:
    moves = [o for o in tracking_outputs() if isinstance(o, GeofenceTransition)]
    assert [m.transition for m in moves] == ["enter", "exit"]
    assert_valid("geofence-event", [m.to_dict() for m in moves])


def test_dead_letters_of_the_dispatcher_validate() -> None:
    rejection = Rejection(Reason.MALFORMED_JSON, "expected a JSON object")
    cases = [
        InRecord("fleet.alerts", 0, 7, T0, b'{"event_action": "trig', key=b"truck_offline:T1"),
        InRecord("fleet.alerts", 1, 8, T0, b"\xff\xfe" * 10, key=b"\x80\x81"),  # not UTF-8
        InRecord("fleet.alerts", 1, 9, T0, b"x" * 100_000),  # cut to 64 KiB
        InRecord("fleet.alerts", 1, 10, T0, None),  # a tombstone
    ]
    letters = [orjson.loads(dead_letter(r, rejection, NOW).to_json()) for r in cases]
    assert [d["raw_encoding"] for d in letters] == ["utf-8", "base64", "utf-8", "utf-8"]
    assert letters[2]["raw_truncated"] is True and letters[1]["key_encoding"] == "base64"
    assert_valid("dead-letter", letters)


@settings(max_examples=60)
@given(raw=ping_records())
def test_what_the_ping_reader_makes_of_any_record_validates(raw: bytes) -> None:
    """An accepted ping is a contract ping; a refused one becomes a contract dead letter."""
    got = parse_ping(raw, NOW)
    if isinstance(got, Ping):
        assert errors("gps-ping", got.to_dict()) == []
    else:
        letter = DeadLetter("fleet.gps", 0, 1, str(got.reason), got.detail, raw, NOW, b"T1")
        assert errors("dead-letter", letter.to_dict()) == []


@settings(max_examples=60)
@given(raw=scan_records())
def test_a_scan_the_reader_refuses_becomes_a_valid_dead_letter(raw: bytes) -> None:
    got = parse_scan(raw, NOW)
    if isinstance(got, Rejection):
        letter = DeadLetter("fleet.scans", 3, 2, str(got.reason), got.detail, raw, NOW, None)
        assert errors("dead-letter", letter.to_dict()) == []


class Sink:
    """A gateway client that keeps the frames it is sent."""

    def __init__(self) -> None:
        self.frames: list[Any] = []

    def enqueue(self, key: Hashable | None, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))


def stream_entry(truck_id: str, lat: float, lng: float) -> dict[bytes, bytes]:
    """A `stream:positions` entry as the tracking job writes it."""
    values = (truck_id, lat, lng, 50.0, 90.0, "MOVING", T0, "WEST")
    return {k.encode(): str(v).encode() for k, v in zip(POSITION_FIELDS, values, strict=True)}


def test_gateway_frames_validate() -> None:
    router, sink = Router(), Sink()
    router.add(Subscription(sink, "view1", parse_bbox([-125.0, 32.0, -114.0, 49.0])))
    router.on_entry(b"100-0", stream_entry("T00042", 47.6, -122.3))
    router.on_entry(b"101-0", stream_entry("T00042", 47.6, -100.0))  # leaves: "left"
    assert [f.get("left", False) for f in sink.frames] == [False, True]
    truck = decode_truck(stream_entry("T7", 45.0, -120.0))
    assert truck is not None
    alert = next(o for o in shipment_outputs() if isinstance(o, AlertEvent))
    with pytest.raises(ClientError) as bad_filter:
        parse_filter({"bbox": [1, 2, 3]}, FakeAreas())
    built = [
        *sink.frames,
        orjson.loads(frames.snapshot("view1", [truck], "101-0")),
        orjson.loads(frames.alert(alert.to_dict())),
        orjson.loads(frames.error(bad_filter.value.code, bad_filter.value.message, sub="v")),
        orjson.loads(frames.error("UNAUTHORIZED", "no token")),
        orjson.loads(server.delays_frame([(delay_member("S00017").encode(), 4.0)])),
        orjson.loads(server.LAGGING_FRAME),
    ]
    assert_valid("ws-server-frame", built)


class FakeAreas:
    """What filter parsing looks areas up in: the four regions (as boxes) and one hub."""

    def region(self, name: str) -> Any:
        return shapely.box(-125, 30, -110, 49) if name in CENSUS_REGIONS else None

    def geofence(self, fence_id: str) -> Any:
        if fence_id == "HUB-SEA":
            return Area("HUB-SEA", shapely.box(-122.36, 47.58, -122.30, 47.63), *HUB, 2000.0)
        return None


GOOD_FILTERS: list[dict[str, Any]] = [
    {"bbox": [-125.0, 32.0, -114.0, 49.0]},
    {"polygon": {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [0, 2], [0, 0]]]}},
    {"region": "WEST"},
    {"geofence": "HUB-SEA"},
    {"hub": "HUB-SEA"},
    {"truck_ids": ["T00042", "T-7.b_c"]},
]
BAD_FILTERS: list[Any] = [
    {},
    {"bbox": [-125.0, 32.0, -114.0]},
    {"bbox": [-125.0, 32.0, -114.0, "49"]},
    {"bbox": [-125.0, 32.0, -114.0, 91.0]},
    {"bbox": [-125.0, 32.0, -114.0, 49.0], "region": "WEST"},
    {"polygon": {"type": "Point", "coordinates": [0, 0]}},
    {"region": "OTHER"},
    {"truck_ids": []},
    {"truck_ids": ["T 1"]},
    {"colour": "red"},
    ["bbox"],
]


@pytest.mark.parametrize("flt", GOOD_FILTERS)
def test_a_filter_the_schema_accepts_the_gateway_accepts(flt: dict[str, Any]) -> None:
    assert errors("ws-client-frame", {"op": "subscribe", "id": "v", "filter": flt}) == []
    parse_filter(flt, FakeAreas())


@pytest.mark.parametrize("flt", BAD_FILTERS)
def test_a_filter_the_schema_refuses_the_gateway_refuses(flt: Any) -> None:
    assert errors("ws-client-frame", {"op": "subscribe", "id": "v", "filter": flt}) != []
    with pytest.raises(ClientError):
        parse_filter(flt, FakeAreas())


def test_client_frames_the_gateway_handles_validate() -> None:
    assert_valid(
        "ws-client-frame",
        [
            {"op": "subscribe", "id": "t1", "filter": {"truck_ids": ["T1"]}, "since": "5-0"},
            {"op": "unsubscribe", "id": "t1"},
            {"op": "resume", "since": "100-3"},
            {"op": "delays"},
            {"op": "delays", "watch": False},
            {"op": "ping"},
        ],
    )


# -- (c) broken records are refused -----------------------------------------------------------
PING = {"truck_id": "T00042", "ts": T0, "lat": 47.6, "lng": -122.3, "speed_kph": 80.0}
SCAN = {"scan_id": "SC-1", "shipment_id": "S1", "type": "ARRIVED_HUB", "ts": T0}
GEOFENCE = {"truck_id": "T1", "geofence_id": "HUB-SEA", "transition": "enter", "ts": T0}
GEOFENCE |= {"lat": 47.6, "lng": -122.3}


def alert_example() -> dict[str, Any]:
    return contract_examples()["alert-event"][0]  # type: ignore[no-any-return]


def without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


def with_payload(**changes: Any) -> dict[str, Any]:
    a = alert_example()
    return {**a, "payload": {**a["payload"], **changes}}


HOSTILE: list[tuple[str, Any]] = [
    ("gps-ping", without(PING, "lat")),  # missing field
    ("gps-ping", {**PING, "ts": str(T0)}),  # wrong type
    ("gps-ping", {**PING, "ts": T0 // 1000}),  # seconds, not milliseconds
    ("gps-ping", {**PING, "lat": 91.0}),
    ("gps-ping", {**PING, "speed_kph": -1}),
    ("gps-ping", {**PING, "truck_id": "T 42"}),
    ("gps-ping", {**PING, "speed_kph": None}),  # optional means absent, not null
    ("gps-ping", [PING]),
    ("scan-event", {**SCAN, "type": "TELEPORTED"}),  # bad enum
    ("scan-event", without(SCAN, "scan_id")),
    ("scan-event", {**SCAN, "type": "PICKED_UP"}),  # a pickup without promise and destination
    ("scan-event", {**SCAN, "lat": 47.6}),  # half a position
    ("alert-event", {**alert_example(), "event_action": "escalate"}),
    ("alert-event", {**alert_example(), "dedup_key": "no-class"}),
    ("alert-event", without(alert_example(), "payload")),
    ("alert-event", with_payload(severity="urgent")),
    ("alert-event", with_payload(timestamp="25/11/2026 20:10")),
    ("alert-event", with_payload(summary="")),
    ("alert-event", with_payload(custom_details={"delay_severity": 3})),  # no event_ts
    ("geofence-event", {**GEOFENCE, "transition": "inside"}),
    ("geofence-event", without(GEOFENCE, "geofence_id")),
    ("dead-letter", {**contract_examples()["dead-letter"][0], "raw_encoding": "latin-1"}),
    ("dead-letter", contract_examples()["dead-letter"][0]),  # before the amendment: no raw_size
    ("ws-client-frame", {"op": "subscribe", "id": "", "filter": {"region": "WEST"}}),
    ("ws-client-frame", {"op": "subscribe", "id": "v"}),
    ("ws-client-frame", {"op": "resume"}),
    ("ws-client-frame", {"op": "explode"}),
    ("ws-client-frame", {"id": "v", "filter": {"region": "WEST"}}),
    ("ws-server-frame", {"type": "position", "sub": "v", "seq": "1-0", "truck": {"lat": 1}}),
    ("ws-server-frame", {"type": "snapshot", "sub": "v", "trucks": {}, "seq": "1-0"}),
    ("ws-server-frame", {"type": "delays", "shipments": [{"shipment_id": "S", "severity": 6}]}),
    ("ws-server-frame", {"type": "alert", "alert": {"event_action": "trigger"}}),
    ("ws-server-frame", {"type": "hello"}),
]


@pytest.mark.parametrize(("name", "record"), HOSTILE)
def test_broken_records_are_refused(name: str, record: Any) -> None:
    assert errors(name, record) != []


# -- names, and the code's own constants kept in step with the contract's ----------------------
def test_redis_key_builders() -> None:
    assert truck_key("T00042") == "truck:T00042"
    assert region_key("WEST") == "region:WEST"
    assert delay_member("S00017") == "shipment:S00017"
    assert shipment_of_delay_member(delay_member("S:1")) == "S:1"
    assert delay_account_key("S00017") == "delayjob:shipment:S00017"
    assert set(region_count_fields({"MOVING": 2, "STOPPED": 1})) <= set(REGION_FIELDS)


def test_topics_keep_the_contract_names() -> None:
    assert [t.name for t in contract_topics()] == [
        "fleet.gps",
        "fleet.scans",
        "fleet.alerts",
        "fleet.geofence-events",
        "fleet.dlq",
    ]
    assert TopicNames() == DEFAULT_TOPICS


def test_schema_enums_follow_the_code_they_describe() -> None:
    assert tuple(geo.CENSUS_REGIONS) == CENSUS_REGIONS
    assert MAX_FILTER_TRUCK_IDS == MAX_TRUCK_IDS
    assert MAX_SUBSCRIPTION_ID == server.MAX_SUB_ID
    alert = json_schema("alert-event")["$defs"]
    actions = alert["AlertRecord"]["properties"]["event_action"]["enum"]
    assert sorted(actions) == sorted(alert_records.ACTIONS)
    severities = alert["AlertPayload"]["properties"]["severity"]["enum"]
    assert sorted(severities) == sorted(alert_records.PAGERDUTY_SEVERITIES)
    assert set(ss.CLASSES) <= set(ALERT_CLASSES)
    assert set(SubscriptionFilter.__struct_fields__) == set(FILTER_KEYS)


def test_the_structs_decode_records_as_their_schemas_judge_them() -> None:
    assert msgspec.json.decode(orjson.dumps(PING), type=PingRecord).truck_id == "T00042"
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(orjson.dumps({**PING, "lat": 91.0}), type=PingRecord)


# -- one haversine and one way to the data files ----------------------------------------------
def test_one_haversine_in_metres_and_kilometres() -> None:
    km = geo.haversine_km(47.6062, -122.3321, 45.5152, -122.6784)
    assert km == pytest.approx(233.5, abs=1.5)
    assert geo.haversine_m(47.6062, -122.3321, 45.5152, -122.6784) == pytest.approx(km * 1000)
    assert sim_geo.haversine_m is geo.haversine_m


def test_data_files_come_from_udfs() -> None:
    assert sim_geo.HUBS_PATH == geo.data_file("hubs.geojson") == geo.HUBS_FILE
    assert server.DATA_FILES["/data/us-states.geojson"] == geo.STATES_FILE
    assert all(p.is_file() for p in server.DATA_FILES.values())
    for name in ("../models.py", "data/hubs.geojson", "..", ""):
        with pytest.raises(ValueError):
            geo.data_file(name)
