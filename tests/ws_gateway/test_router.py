"""Routing stream entries to subscriptions: live positions, leaving, replay, alerts (pure)."""

from __future__ import annotations

import gc
from collections.abc import Hashable
from typing import Any

import orjson
import pytest
import shapely

from udfs.encoding import kept
from ws_gateway.alerts import Malformed, MapAlert, decode_alert
from ws_gateway.filters import Filter, parse_bbox
from ws_gateway.router import Router, Subscription, decode_truck, seq_key

pytestmark = pytest.mark.unit


class Sink:
    """A client that records what it would be sent, coalescing like the real queue."""

    def __init__(self) -> None:
        self.frames: dict[Hashable, dict[str, Any]] = {}
        self.log: list[dict[str, Any]] = []
        self._n = 0

    def enqueue(self, key: Hashable | None, frame: bytes) -> None:
        msg = orjson.loads(frame)
        self.log.append(msg)
        if key is None:
            self._n += 1
            key = self._n
        self.frames[key] = msg


def entry(tid: str, lat: float, lng: float, **extra: Any) -> dict[bytes, bytes]:
    fields = {
        "truck_id": tid,
        "lat": lat,
        "lng": lng,
        "speed_kph": 50,
        "heading": 90,
        "status": "MOVING",
        "ts_ms": 1764099641123,
        "region": "WEST",
        **extra,
    }
    return {k.encode(): str(v).encode() for k, v in fields.items()}


def test_position_in_box_and_last_message_on_leaving() -> None:
    r = Router()
    a, b = Sink(), Sink()
    sa = Subscription(a, "view", parse_bbox([-125, 40, -120, 45]))
    sb = Subscription(b, "east", parse_bbox([-119, 40, -110, 45]))
    r.add(sa)
    r.add(sb)
    assert r.on_entry(b"100-0", entry("T1", 42, -122)) == 1
    assert a.log[-1] == {
        "type": "position",
        "sub": "view",
        "seq": "100-0",
        "truck": {
            "truck_id": "T1",
            "lat": 42.0,
            "lng": -122.0,
            "speed_kph": 50.0,
            "heading": 90.0,
            "status": "MOVING",
            "ts_ms": 1764099641123,
            "region": "WEST",
        },
    }
    assert b.log == []
    # T1 crosses from a's box into b's: a gets one last message (left), b the position
    assert r.on_entry(b"101-0", entry("T1", 42, -115)) == 2
    assert a.log[-1]["left"] is True and a.log[-1]["truck"]["lng"] == -115.0
    assert "left" not in b.log[-1]
    # outside both: only b hears (it left b); a hears nothing more
    r.on_entry(b"102-0", entry("T1", 0, 0))
    assert len(a.log) == 2 and b.log[-1]["left"] is True
    r.on_entry(b"103-0", entry("T1", 1, 1))
    assert len(a.log) == 2 and len(b.log) == 2


def test_snapshot_positions_let_leaving_be_seen() -> None:
    r = Router()
    a = Sink()
    r.add(Subscription(a, "v", parse_bbox([0, 0, 10, 10])))
    r.learn([{"truck_id": "T9", "lat": 5.0, "lng": 5.0}])  # known only from a snapshot
    r.on_entry(b"5-0", entry("T9", 20, 20))
    assert a.log[-1]["left"] is True


def test_duplicates_and_bad_entries_are_skipped() -> None:
    r = Router()
    a = Sink()
    r.add(Subscription(a, "v", parse_bbox([-180, -90, 180, 90])))
    r.on_entry(b"5-0", entry("T1", 1, 1))
    assert r.on_entry(b"5-0", entry("T1", 2, 2)) == 0  # same id again
    assert r.on_entry(b"4-9", entry("T1", 2, 2)) == 0  # older
    assert r.on_entry(b"6-0", entry("T1", 95, 2)) == 0  # impossible latitude
    assert r.on_entry(b"7-0", {b"lat": b"1", b"lng": b"1"}) == 0  # no truck id
    assert r.on_entry(b"8-0", entry("bad id!", 1, 1)) == 0
    assert r.skipped == 3 and len(a.log) == 1


def flat(fields: dict[bytes, bytes]) -> list[bytes]:
    """A stream entry as XREAD returns it: ``[name, value, ...]``."""
    return [x for kv in fields.items() for x in kv]


def test_a_batch_routes_like_its_entries_one_by_one() -> None:
    """``on_batch`` (raw XREAD entries, in the writer's field order or any other) gives the
    same frames, skips and history as ``on_entry`` per entry, including a batch that repeats
    ids already seen (a reader restart) or is out of order."""
    batches = [
        [(b"10-0", flat(entry("T1", 1, 1))), (b"10-1", flat(entry("T2", 2, 2)))],
        [(b"10-1", flat(entry("T2", 3, 3))), (b"11-0", flat(entry("T1", 20, 20)))],  # repeat
        [(b"12-0", flat(dict(reversed(entry("T2", 4, 4).items()))))],  # other field order
        [(b"13-0", flat(entry("T3", 95, 1))), (b"14-0", flat(entry("T3", 5, 5)))],  # bad lat
        [(b"16-0", flat(entry("T1", 6, 6))), (b"15-0", flat(entry("T2", 7, 7)))],  # disorder
        [(b"17-0", [b"truck_id", b"T4", b"lat", b"1"])],  # no lng
    ]
    by_batch, by_entry = Router(), Router()
    sinks = []
    for r in (by_batch, by_entry):
        sink = Sink()
        sinks.append(sink)
        r.add(Subscription(sink, "v", parse_bbox([0, 0, 10, 10])))
    counts = [by_batch.on_batch(b) for b in batches]
    assert counts == [
        sum(by_entry.on_entry(seq, dict(zip(f[0::2], f[1::2], strict=False))) for seq, f in b)
        for b in batches
    ]
    assert counts == [2, 1, 1, 1, 1, 0]  # T1 left the box at 11-0; 15-0 came after 16-0
    assert sinks[0].log == sinks[1].log
    assert by_batch.skipped == by_entry.skipped == 2
    assert by_batch.last_key == by_entry.last_key == (17, 0)
    assert [m["seq"] for m in sinks[0].log] == ["10-0", "10-1", "11-0", "12-0", "14-0", "16-0"]
    sink = Sink()
    late = Subscription(sink, "late", parse_bbox([0, 0, 10, 10]))
    by_batch.replay(late, "11-0")
    assert [m["seq"] for m in sink.log] == ["12-0", "14-0", "16-0"]


def test_a_failure_inside_a_batch_leaves_the_rest_to_be_read_again() -> None:
    """If routing raises (a bug of ours), the reader retries from ``last_seq``: it must name
    the entry that failed, so the entries after it are not lost."""
    r = Router()
    sink = Sink()
    r.add(Subscription(sink, "v", parse_bbox([0, 0, 10, 10])))
    boom = Sink()
    boom.enqueue = None  # type: ignore[assignment,method-assign]  # calling it raises
    r.add(Subscription(boom, "w", parse_bbox([20, 20, 30, 30])))
    batch = [
        (b"1-0", flat(entry("T1", 1, 1))),
        (b"2-0", flat(entry("T2", 25, 25))),
        (b"3-0", flat(entry("T3", 3, 3))),
    ]
    with pytest.raises(TypeError):
        r.on_batch(batch)
    assert r.last_seq == "2-0" and [m["seq"] for m in sink.log] == ["1-0"]
    r.remove(next(iter(r.index.match("T2", 25, 25))))
    assert r.on_batch(batch[2:]) == 1 and [m["seq"] for m in sink.log] == ["1-0", "3-0"]


def test_the_replay_history_is_invisible_to_the_garbage_collector() -> None:
    """A full collection scans every tracked object; the 100,000 entries kept for replay must
    not be among them (at full load a longer pause takes seconds to catch up on)."""
    r = Router(replay_entries=1000)
    r.add(Subscription(Sink(), "v", parse_bbox([0, 0, 10, 10])))
    r.on_batch(
        [(f"{i}-0".encode(), flat(entry(f"T{i % 50}", i % 9, i % 7))) for i in range(1, 2001)]
    )
    gc.collect()  # a tuple is untracked once what it holds is: an entry may wait for
    gc.collect()  # its ``prev`` pair to be untracked first, so two collections
    history = list(r._history)
    assert len(history) == 1000
    assert not any(gc.is_tracked(e) for e in history)
    assert not any(gc.is_tracked(p) for p in r.last_pos.values())


def test_the_history_floor_follows_evictions() -> None:
    r = Router(replay_entries=2, start_seq="5-0")
    assert r.floor_key == (5, 0) and not r.can_replay("4-0") and r.can_replay("5-0")
    r.on_batch([(f"{i}-0".encode(), flat(entry("T1", i, i))) for i in range(6, 10)])
    assert r.floor_key == (7, 0)  # 6-0 and 7-0 were evicted
    assert not r.can_replay("6-0") and r.can_replay("7-0") and r.can_replay("9-0")
    assert not r.can_replay("10-0")  # not seen yet


def test_allowed_area_limits_what_a_subscription_sees() -> None:
    r = Router()
    a = Sink()
    west = shapely.box(-125, 30, -110, 49)
    shapely.prepare(west)
    r.add(Subscription(a, "ids", Filter("truck_ids", truck_ids=frozenset({"T1"})), west))
    r.on_entry(b"1-0", entry("T1", 40, -120))
    r.on_entry(b"2-0", entry("T1", 40, -100))  # left the token's area: last message
    r.on_entry(b"3-0", entry("T1", 41, -100))
    assert [m.get("left", False) for m in a.log] == [False, True]


def test_replay_since_and_floor() -> None:
    r = Router(replay_entries=4)
    r.set_start("10-0")
    a = Sink()
    sub = Subscription(a, "v", parse_bbox([0, 0, 10, 10]))
    for i, (lat, lng) in enumerate([(1, 1), (2, 2), (50, 50), (3, 3)]):
        r.on_entry(f"{11 + i}-0".encode(), entry(f"T{i}", lat, lng))
    r.on_entry(b"15-0", entry("T3", 60, 60))  # T3 leaves; history now holds 12..15
    assert not r.can_replay("10-0") and not r.can_replay("garbage")
    assert r.can_replay("11-0") and r.can_replay("15-0") and not r.can_replay("16-0")
    r.replay(sub, "11-0")
    assert [(m["truck"]["truck_id"], m.get("left", False)) for m in a.frames.values()] == [
        ("T1", False),
        ("T3", True),
    ]


def test_alert_targets_by_place_or_truck() -> None:
    r = Router()
    a, b, c = Sink(), Sink(), Sink()
    r.add(Subscription(a, "v", parse_bbox([0, 0, 10, 10])))
    r.add(Subscription(a, "v2", parse_bbox([0, 0, 20, 20])))  # same client once
    r.add(Subscription(b, "t", Filter("truck_ids", truck_ids=frozenset({"T1"}))))
    r.add(Subscription(c, "far", parse_bbox([50, 50, 60, 60])))
    assert set(map(id, r.alert_targets(5, 5, "T1"))) == {id(a), id(b)}
    assert set(map(id, r.alert_targets(None, None, "T1"))) == {id(b)}
    r.on_entry(b"1-0", entry("T1", 55, 55))  # now the truck's last place is known
    assert set(map(id, r.alert_targets(None, None, "T1"))) == {id(b), id(c)}
    assert r.alert_targets(None, None, None) == []


def test_decode_alert_filters_critical_triggers() -> None:
    ev = {
        "event_action": "trigger",
        "dedup_key": "truck_offline:T1",
        "payload": {
            "severity": "critical",
            "summary": "x",
            "source": "test",
            "custom_details": {"truck_id": "T1", "lat": 1.5, "lng": 2.5},
        },
    }
    got = decode_alert(orjson.dumps(ev))
    assert isinstance(got, MapAlert) and (got.lat, got.lng, got.truck_id) == (1.5, 2.5, "T1")
    assert decode_alert(orjson.dumps({**ev, "event_action": "resolve"})) is None
    low = {**ev, "payload": {**ev["payload"], "severity": "error"}}
    assert decode_alert(orjson.dumps(low)) is None
    assert isinstance(decode_alert(orjson.dumps(low), min_severity="error"), MapAlert)
    assert isinstance(decode_alert(b"not json"), Malformed)
    assert isinstance(decode_alert(b"[1]"), Malformed)


def test_seq_and_truck_decoding() -> None:
    assert seq_key("1764099641123-7") == (1764099641123, 7) and seq_key(b"5") == (5, 0)
    t = decode_truck({"truck_id": "T1", "lat": "1", "lng": "2", "speed_kph": "", "status": None})
    assert t == {"truck_id": "T1", "lat": 1.0, "lng": 2.0, "status": "UNKNOWN"}
    assert decode_truck({"truck_id": "T1", "lat": "x", "lng": "2"}) is None
    raw = flat(entry("T1", 1, 2))
    assert (
        decode_truck(raw)
        == decode_truck(entry("T1", 1, 2))
        == {
            "truck_id": "T1",
            "lat": 1.0,
            "lng": 2.0,
            "speed_kph": 50.0,
            "heading": 90.0,
            "status": "MOVING",
            "ts_ms": 1764099641123,
            "region": "WEST",
        }
    )
    for i, bad in (
        (3, b""),
        (3, b"nan"),
        (5, b"inf"),
        (1, b"bad id!"),
        (9, b"x"),
        (1, b"T\xff"),
        (11, b"\xc3"),
        (15, b"\xff"),
    ):  # and bytes that are not UTF-8
        broken = list(raw)
        broken[i] = bad
        assert decode_truck(broken) is None, (i, bad)
    no_speed = list(raw)
    no_speed[7] = b""
    assert "speed_kph" not in (decode_truck(no_speed) or {"speed_kph": 0})


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) / 1024


def test_kept_encodings_are_exact_copies_that_cost_their_size() -> None:
    truck = {
        "truck_id": "T00001",
        "lat": 40.123456,
        "lng": -100.12345,
        "speed_kph": 80.0,
        "status": "MOVING",
        "ts_ms": 1_764_130_000_000,
        "region": "WEST",
    }
    encoded = orjson.dumps(truck)
    copy = kept(encoded)
    assert copy == encoded and copy is not encoded
    before = _rss_mib()
    history = [kept(orjson.dumps({**truck, "ts_ms": i})) for i in range(20_000)]
    # 20,000 results of ~150 bytes: ~3 MiB as exact copies, ~80 MiB as orjson returns them
    assert _rss_mib() - before < 25
    assert len(history) == 20_000
