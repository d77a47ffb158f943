"""The bundled truck function as an adapter: a bundle of one shard's records in, the same
pure state machine per ping, outputs gathered per bundle, wake-ups indexed by the second."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import orjson
import pytest
from pyflink.common import Row

from flink_jobs.tracking.bundling import encode_bundle
from flink_jobs.tracking.outputs import ALERT_TAG, BATCHED, CENSUS_TAG, DLQ_TAG
from flink_jobs.tracking.settings import TrackingSettings
from flink_jobs.tracking.shards import java_shard
from flink_jobs.tracking.truck_function import TruckFunction, decode_entry
from flink_jobs.tracking.wakeups import wake_second
from tests.unit.flink_fakes import FakeContext, FakeRuntime
from udfs.geo import GeofenceIndex, RegionIndex, default_regions
from udfs.truck_state import PositionWrite, TrackingConfig

pytestmark = pytest.mark.unit
SHARDS = 4
T0 = (int(time.time() * 1000) - 3600_000) // 1000 * 1000
SLACK = TrackingConfig().detection_slack_ms


def trucks_of(shard: int, n: int) -> list[str]:
    return [t for t in (f"T{i}" for i in range(200)) if java_shard(t, SHARDS) == shard][:n]


SHARD = 1
A, B = trucks_of(SHARD, 2)
OTHER = trucks_of(SHARD + 1, 1)[0]


class Collecting(TruckFunction):
    """Writes its positions to a list instead of Redis (still through the background writer)."""

    def open_position_writer(self) -> Any:
        self.written: list[PositionWrite] = []
        return self.written.extend


def written(fn: Collecting) -> list[PositionWrite]:
    """The positions written since the last look, once the background writer has drained."""
    fn.writes.drain()
    got = list(fn.written)
    fn.written.clear()
    return got


def opened(bounded: bool = True) -> tuple[Collecting, FakeRuntime]:
    fn = Collecting(
        TrackingSettings(
            bounded=bounded, parallelism=2, bundle_shards=SHARDS, fallback_grace_ms=2000
        ),
        TrackingConfig(),
        default_regions(),
        GeofenceIndex.from_file(),
    )
    runtime = FakeRuntime()
    fn.open(runtime)
    return fn, runtime


def ping(truck: str, ts: int, lat: float = 40.0, lng: float = -100.0) -> bytes:
    return orjson.dumps({"truck_id": truck, "ts": ts, "lat": lat, "lng": lng, "speed_kph": 50})


def bundle(*values: bytes | None) -> bytes:
    return encode_bundle([(2, 100 + i, v) for i, v in enumerate(values)])


def side(outputs: list[Any], tag: Any) -> list[Any]:
    """The rows of one side output, which a call emits as one batch of columns (or none)."""
    batches = [o[1] for o in outputs if not isinstance(o, Row) and o[0] is BATCHED[tag]]
    assert len(batches) <= 1, f"{tag.tag_id}: {len(batches)} batches from one call"
    assert all(isinstance(b, Row) and b[0] for b in batches)
    return [Row(*fields) for batch in batches for fields in zip(*batch, strict=True)]


def stored(runtime: FakeRuntime, name: str) -> dict[Any, Any]:
    """What Flink's map state holds (what a checkpoint would), truck boxes decoded."""
    held: dict[Any, Any] = runtime.states[name].stored
    if name == "trucks":
        return {key: decode_entry(value) for key, value in held.items()}
    return held


def checkpointed(fn: TruckFunction, runtime: FakeRuntime, name: str) -> dict[Any, Any]:
    """Map state after the shard's checkpoint marker (the empty bundle ahead of a barrier)."""
    assert list(fn.process_element(b"", FakeContext(key=SHARD))) == []
    return stored(runtime, name)


def test_a_bundle_is_parsed_applied_per_truck_and_emitted_once_per_kind() -> None:
    fn, runtime = opened()
    ctx = FakeContext(key=SHARD)
    out = list(
        fn.process_element(
            bundle(
                ping(A, T0),
                b"{broken",
                ping(B, T0 - 500),
                ping(OTHER, T0),
                None,
                ping(A, T0 + 30_000, lat=40.003),
            ),
            ctx,
        )
    )

    assert not [o for o in out if isinstance(o, Row)]  # positions are not an output
    writes = written(fn)
    assert [(w.truck_id, w.ts) for w in writes] == [(A, T0), (B, T0 - 500), (A, T0 + 30_000)]
    assert all(isinstance(w, PositionWrite) for w in writes)
    assert fn.counters.total("redis_writes", {"kind": "position"}) == 3
    letters = [orjson.loads(r[1]) for r in side(out, DLQ_TAG)]
    assert [(d["reason"], d["partition"], d["offset"]) for d in letters] == [
        ("MALFORMED_JSON", 2, 101),
        ("BAD_VALUE", 2, 103),
        ("MALFORMED_JSON", 2, 104),
    ]
    # Census deltas summed over the bundle: two trucks entered one bucket.
    assert side(out, CENSUS_TAG) == [Row("MIDWEST", [("MOVING", 2)])]
    assert stored(runtime, "trucks") == {}  # held in memory until the checkpoint marker
    trucks = checkpointed(fn, runtime, "trucks")
    assert set(trucks) == {A, B}  # the other shard's truck was not applied here
    assert trucks[A].state.pos_ts == T0 + 30_000
    # Both trucks are due within one second: one index entry, one timer.
    second = wake_second(T0 + SLACK)
    assert trucks[A].wake_second == trucks[B].wake_second == second
    assert checkpointed(fn, runtime, "due") == {second: [A, B]}
    assert ctx.registered == [("event", SHARD, second)]
    assert fn.counters.total("records", {"outcome": "parsed"}) == 3
    assert fn.counters.total("records", {"outcome": "accepted"}) == 3
    assert fn.counters.total("dead_letters", {"reason": "malformed_json"}) == 2
    assert fn.counters.total("dead_letters") == 3
    # one Flink counter per series, incremented once per bundle (one call into the JVM)
    letters_counter = runtime.counters["fleetpulse.reason.malformed_json.dead_letters"]
    assert (letters_counter.count, letters_counter.calls) == (2, 1)
    assert runtime.counters["fleetpulse.outcome.parsed.records"].calls == 1


def test_a_second_fires_for_the_trucks_still_indexed_under_it_and_skips_stale_ones() -> None:
    fn, runtime = opened()
    list(fn.process_element(bundle(ping(A, T0), ping(B, T0 + 2000)), FakeContext(key=SHARD)))
    first = wake_second(T0 + SLACK)
    assert checkpointed(fn, runtime, "due") == {first: [A], first + 2000: [B]}
    # B's next ping arrives after the watermark passed its first one: that one is detected
    # on arrival, and B's wake-up moves on, leaving a stale entry under its old second.
    list(
        fn.process_element(
            bundle(ping(B, T0 + 32_000, lat=40.01)), FakeContext(key=SHARD, watermark=T0 + 2000)
        )
    )
    trucks = checkpointed(fn, runtime, "trucks")
    assert trucks[B].wake_second == wake_second(T0 + 32_000 + SLACK)
    assert trucks[B].state.det_ts == T0 + 2000

    list(fn.on_timer(first + 2000, FakeContext(key=SHARD, watermark=first + 2000)))
    assert checkpointed(fn, runtime, "trucks")[B].state.pending  # stale entry: B was not advanced
    assert first + 2000 not in checkpointed(fn, runtime, "due")

    fire = FakeContext(key=SHARD, watermark=first)
    list(fn.on_timer(first, fire))  # A's second: its buffered ping is detected
    a = checkpointed(fn, runtime, "trucks")[A]
    assert a.state.det_ts == T0 and not a.state.pending
    # Re-indexed under its next wake-up, the offline timeout, with a timer for it.
    offline = wake_second(T0 + TrackingConfig().offline_after_s * 1000)
    assert a.wake_second == offline and A in checkpointed(fn, runtime, "due")[offline]
    assert ("event", SHARD, offline) in fire.registered


def test_the_fallback_tick_wakes_trucks_when_the_watermark_has_stalled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fn, runtime = opened(bounded=False)  # fallback grace: 2 s
    ctx = FakeContext(key=SHARD, watermark=T0 - 1)
    list(fn.process_element(bundle(ping(A, T0)), ctx))
    [tick] = [at for kind, _, at in ctx.registered if kind == "processing"]
    # The watermark passes the ping (detected on its second's timer), then stalls 5 s of
    # event time before A's offline timeout: all traffic has stopped.
    stalled = T0 + 600_000 - 5000
    list(fn.on_timer(wake_second(T0 + SLACK), FakeContext(key=SHARD, watermark=stalled)))

    wall = int(time.time() * 1000)
    alerts = []
    for elapsed in (0, 3000, 9000):  # first look; stalled, 3 s in; stalled, 9 s in
        monkeypatch.setattr(fn, "clock", lambda e=elapsed: wall + e)
        tick_ctx = FakeContext(key=SHARD, watermark=stalled, domain="PROCESSING_TIME")
        out = list(fn.on_timer(tick, tick_ctx))
        alerts.append([orjson.loads(r[1]) for r in side(out, ALERT_TAG)])
        registered = [(kind, at) for kind, _, at in tick_ctx.registered]
        assert registered[-1][0] == "processing"  # next tick
        # once offline has fired, A's only wake-up left is its state's expiry
        expiry = wake_second(T0 + TrackingConfig().state_ttl_s * 1000)
        assert registered[:-1] == ([("event", expiry)] if elapsed == 9000 else [])
    # Event time assumed (udfs.stall_fallback): the stalled watermark plus the time elapsed less
    # the 2 s grace. 3 s in it is 4 s short of the timeout; 9 s in it is 2 s past it, and the
    # alert carries the time it was due, not the wall clock's.
    assert alerts[:2] == [[], []]
    assert [(a["dedup_key"], a["payload"]["custom_details"]["event_ts"]) for a in alerts[2]] == [
        (f"truck_offline:{A}", T0 + 600_000)
    ]
    # written through at once: no checkpoint marker need follow a processing-time timer
    assert stored(runtime, "trucks")[A].state.offline_open
    assert fn.written[-1].status == "OFFLINE"  # in Redis before the tick returned


def test_a_watermark_keeping_pace_never_triggers_the_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fn, runtime = opened(bounded=False)
    list(fn.process_element(bundle(ping(A, T0)), FakeContext(key=SHARD, watermark=T0 - 1)))
    wall = int(time.time() * 1000)
    for step in range(0, 20):  # event time runs with the wall clock, far past every timeout
        monkeypatch.setattr(fn, "clock", lambda s=step: wall + s * 60_000)
        out = list(
            fn.on_timer(
                0,
                FakeContext(key=SHARD, watermark=T0 - 1 + step * 60_000, domain="PROCESSING_TIME"),
            )
        )
        assert side(out, ALERT_TAG) == []
    # only the event-time timers may wake it
    assert checkpointed(fn, runtime, "trucks")[A].state.pending


class CountingMapState:
    """A map state that counts the calls that cross into the JVM in PyFlink."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.inner, name)


def test_changes_reach_map_state_at_the_checkpoint_marker_and_a_restore_continues_from_it() -> None:
    fn, runtime = opened()
    list(fn.process_element(bundle(ping(A, T0)), FakeContext(key=SHARD)))
    checkpointed(fn, runtime, "trucks")
    list(
        fn.process_element(
            bundle(ping(A, T0 + 30_000, lat=40.003)), FakeContext(key=SHARD, watermark=T0 + 1)
        )
    )
    # The second ping changed A in memory only: the state still holds the checkpointed A.
    assert stored(runtime, "trucks")[A].state.pos_ts == T0
    assert fn.trucks.get(SHARD, A).state.pos_ts == T0 + 30_000

    # A crash now loses the change; a restore (a new instance on the checkpoint's state)
    # reads the shard whole, once, and the replayed ping applies again.
    restored = Collecting(fn.settings, fn.cfg, fn.regions, fn.geofences)
    restored_runtime = FakeRuntime()
    restored_runtime.states = runtime.states
    restored.open(restored_runtime)
    counting = CountingMapState(restored.trucks.state)
    restored.trucks.state = counting
    list(
        restored.process_element(
            bundle(ping(A, T0 + 30_000, lat=40.003), ping(B, T0 + 30_000)),
            FakeContext(key=SHARD, watermark=T0 + 1),
        )
    )
    assert [(w.truck_id, w.ts) for w in written(restored)] == [(A, T0 + 30_000), (B, T0 + 30_000)]
    assert counting.calls == ["items"]  # B, unknown to the shard, is new without asking
    # and replaying it once more is an exact duplicate
    list(
        restored.process_element(
            bundle(ping(A, T0 + 30_000, lat=40.003)), FakeContext(key=SHARD, watermark=T0 + 1)
        )
    )
    assert written(restored) == []
    assert restored.counters.total("records", {"outcome": "duplicate"}) == 1
    assert checkpointed(restored, runtime, "trucks")[A].state.det_ts == T0
    assert counting.calls == ["items", "put_all"]


def test_a_cold_region_cell_is_classified_with_its_block_once() -> None:
    calls: list[list[tuple[int, int]]] = []

    class CountingRegions(RegionIndex):
        def _classify(self, cells: list[tuple[int, int]]) -> list[str | None]:
            calls.append(sorted(cells))
            return super()._classify(cells)

    regions = CountingRegions(default_regions().shapes())
    fn = Collecting(
        TrackingSettings(parallelism=2, bundle_shards=SHARDS),
        TrackingConfig(),
        regions,
        GeofenceIndex.from_file(),
    )
    fn.open(FakeRuntime())
    list(
        fn.process_element(
            bundle(
                ping(A, T0, lat=40.05, lng=-100.05),
                ping(B, T0, lat=35.05, lng=-90.05),
                ping(A, T0 + 30_000, lat=40.06, lng=-100.04),
            ),
            FakeContext(key=SHARD),
        )
    )
    # one batch per cold block of 8 x 8 cells (udfs.geo.RegionIndex.BLOCK), in the order met;
    # A's second ping, in a cell of the same block, classifies nothing
    assert [len(c) for c in calls] == [64, 64]
    assert (-1001, 400) in calls[0] and (-1008, 400) in calls[0] and (-1001, 407) in calls[0]
    assert (-901, 350) in calls[1]
    assert regions.region_of(35.05, -90.05) == "SOUTH"
    assert fn.trucks.get(SHARD, B).state.region == "SOUTH"


class Gated(Collecting):
    """Its background writes wait for ``gate``."""

    def open_position_writer(self) -> Any:
        self.gate = threading.Event()
        self.written = []

        def write(batch: list[PositionWrite]) -> None:
            self.gate.wait()
            self.written.extend(batch)

        return write


def test_the_checkpoint_marker_returns_only_once_every_position_is_written() -> None:
    fn = Gated(
        TrackingSettings(parallelism=2, bundle_shards=SHARDS),
        TrackingConfig(),
        default_regions(),
        GeofenceIndex.from_file(),
    )
    fn.open(FakeRuntime())
    list(fn.process_element(bundle(ping(A, T0), ping(B, T0)), FakeContext(key=SHARD)))
    marker = threading.Thread(target=lambda: list(fn.process_element(b"", FakeContext(key=SHARD))))
    marker.start()
    marker.join(0.2)
    assert marker.is_alive() and fn.written == []  # waiting for the write in flight
    fn.gate.set()
    marker.join()
    assert [w.truck_id for w in fn.written] == [A, B]
    fn.close()


def test_a_ping_far_behind_its_shards_newest_is_a_stale_dead_letter_with_its_key() -> None:
    fn, _ = opened()
    old = T0 - TrackingSettings().max_record_age_s * 1000 - 1
    records = [
        (2, 100, A.encode(), ping(A, T0)),
        (2, 101, b"\xff" + A.encode(), ping(B, old)),
        (2, 102, None, ping(B, T0 - 60_000)),
    ]
    out = list(fn.process_element(encode_bundle(records), FakeContext(key=SHARD)))
    [letter] = [orjson.loads(r[1]) for r in side(out, DLQ_TAG)]
    assert (letter["reason"], letter["offset"]) == ("STALE_TIMESTAMP", 101)
    assert (letter["key"], letter["key_encoding"]) == (
        base64.b64encode(b"\xff" + A.encode()).decode(),
        "base64",
    )  # the key, not UTF-8
    assert [(w.truck_id, w.ts) for w in written(fn)] == [(A, T0), (B, T0 - 60_000)]


def test_a_silent_truck_expires_after_its_ttl_closing_its_incident_and_census() -> None:
    fn, runtime = opened()
    cfg = TrackingConfig()
    list(fn.process_element(bundle(ping(A, T0)), FakeContext(key=SHARD, watermark=T0 - 1)))
    offline = T0 + cfg.offline_after_s * 1000
    expiry = T0 + cfg.state_ttl_s * 1000
    alerts = []
    for at in (T0 + SLACK, offline, expiry):  # detection, offline, expiry: one wake-up each
        out = list(fn.on_timer(wake_second(at), FakeContext(key=SHARD, watermark=at + 1000)))
        alerts += [orjson.loads(r[1]) for r in side(out, ALERT_TAG)]
        if at == expiry:
            assert side(out, CENSUS_TAG) == [Row("MIDWEST", [("OFFLINE", -1)])]
    assert [(a["event_action"], a["payload"]["custom_details"].get("reason")) for a in alerts] == [
        ("trigger", None),
        ("resolve", "expired"),
    ]
    assert A not in checkpointed(fn, runtime, "trucks")


# -- re-assertion of open alerts (--alert-refresh-s) --------------------------------------------

WALL = int(time.time() * 1000) // 1000 * 1000
REFRESH = 300_000
OFFLINE_AT = T0 + TrackingConfig().offline_after_s * 1000


def refreshing(
    refresh_s: int = REFRESH // 1000, in_memory: int = 500_000
) -> tuple[Collecting, FakeRuntime]:
    fn = Collecting(
        TrackingSettings(
            parallelism=2,
            bundle_shards=SHARDS,
            fallback_grace_ms=2000,
            alert_refresh_s=refresh_s,
            trucks_in_memory=in_memory,
        ),
        TrackingConfig(),
        default_regions(),
        GeofenceIndex.from_file(),
    )
    runtime = FakeRuntime()
    fn.open(runtime)
    return fn, runtime


def at(fn: TruckFunction, wall: int) -> None:
    fn.clock = lambda: wall


def alert_rows(outputs: list[Any]) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in side(outputs, ALERT_TAG)]


def go_offline(fn: TruckFunction, *trucks: str) -> list[tuple[str, str]]:
    """Each truck pings once at T0, is detected, and goes offline 10 min later (event-time
    timers): the offline triggers' rows."""
    list(fn.process_element(bundle(*(ping(t, T0) for t in trucks)), FakeContext(key=SHARD)))
    rows = []
    for second in (wake_second(T0 + SLACK), wake_second(OFFLINE_AT)):
        rows += alert_rows(list(fn.on_timer(second, FakeContext(key=SHARD, watermark=second))))
    assert [orjson.loads(r[1])["event_action"] for r in rows] == ["trigger"] * len(trucks)
    return rows


def tick(fn: TruckFunction, wall: int) -> list[tuple[str, str]]:
    """A processing-time tick at ``wall``, the watermark keeping pace with it (so the stall
    fallback wakes nothing: only the tests' event-time timers do): its alert rows."""
    at(fn, wall)
    watermark = OFFLINE_AT + 1000 + wall - WALL
    ctx = FakeContext(key=SHARD, watermark=watermark, domain="PROCESSING_TIME")
    return alert_rows(list(fn.on_timer(wall, ctx)))


def reasserts(fn: TruckFunction) -> int:
    return fn.counters.total("reasserted_alerts", {"class": "truck_offline"})


def test_open_alerts_are_indexed_at_the_first_tick_and_sent_again_every_refresh() -> None:
    fn, _ = refreshing()
    at(fn, WALL - 60_000)
    [trigger] = go_offline(fn, A)
    assert fn.asserted == {}  # no tick yet: no index
    # The shard's first tick reads its trucks (so after a restore everything open goes out
    # again at once), then each alert goes out again a refresh after it last went out.
    assert tick(fn, WALL) == [trigger]
    assert fn.asserted[SHARD] == {(A, "truck_offline"): WALL}
    assert tick(fn, WALL + 5000) == []
    assert tick(fn, WALL + REFRESH - 1) == []
    assert tick(fn, WALL + REFRESH) == [trigger]  # identical, byte for byte
    assert tick(fn, WALL + REFRESH + 5000) == []
    assert reasserts(fn) == 2
    assert fn.counters.total("alerts", {"class": "truck_offline", "action": "trigger"}) == 1


def test_a_trigger_after_the_first_tick_is_stamped_and_its_resolve_unindexes_it() -> None:
    fn, _ = refreshing()
    assert tick(fn, WALL) == [] and fn.asserted[SHARD] == {}  # nothing open yet
    at(fn, WALL + 100_000)
    [trigger] = go_offline(fn, A)  # sent at WALL + 100 s
    assert tick(fn, WALL + REFRESH) == []
    assert tick(fn, WALL + 100_000 + REFRESH) == [trigger]
    # A reports again: detection resolves its alert, which leaves the index
    back = T0 + 15 * 60_000
    list(fn.process_element(bundle(ping(A, back, lat=40.01)), FakeContext(key=SHARD)))
    second = wake_second(back + SLACK)
    out = list(fn.on_timer(second, FakeContext(key=SHARD, watermark=second)))
    assert [orjson.loads(r[1])["event_action"] for r in alert_rows(out)] == ["resolve"]
    assert fn.asserted[SHARD] == {}
    assert tick(fn, WALL + 10 * REFRESH) == []
    assert reasserts(fn) == 1


def test_an_expired_truck_leaves_the_index() -> None:
    fn, _ = refreshing()
    at(fn, WALL)
    go_offline(fn, A, B)
    tick(fn, WALL)
    assert set(fn.asserted[SHARD]) == {(A, "truck_offline"), (B, "truck_offline")}
    expiry = wake_second(T0 + TrackingConfig().state_ttl_s * 1000)
    out = list(fn.on_timer(expiry, FakeContext(key=SHARD, watermark=expiry)))
    assert len(alert_rows(out)) == 2  # both resolved as expired
    assert fn.asserted[SHARD] == {} and fn.trucks.get(SHARD, A) is None
    assert tick(fn, WALL + REFRESH) == []


def test_a_restored_instance_sends_every_open_alert_at_its_first_tick_reading_trucks_once() -> None:
    fn, runtime = refreshing()
    at(fn, WALL - 60_000)
    triggers = go_offline(fn, A, B)
    checkpointed(fn, runtime, "trucks")
    restored = Collecting(fn.settings, fn.cfg, fn.regions, fn.geofences)
    restored_runtime = FakeRuntime()
    restored_runtime.states = runtime.states
    restored.open(restored_runtime)
    reads: list[int] = []
    items = restored.trucks.items
    restored.trucks.items = lambda shard: reads.append(shard) or items(shard)  # type: ignore[method-assign]
    assert sorted(tick(restored, WALL)) == sorted(triggers)
    # later ticks read the index alone, and only its entries due
    for wall in (WALL + 5000, WALL + REFRESH, WALL + REFRESH + 5000):
        tick(restored, wall)
    assert reads == [SHARD]
    assert reasserts(restored) == 4


def test_a_refresh_of_zero_keeps_no_index_and_sends_nothing_again() -> None:
    fn, _ = refreshing(0)
    at(fn, WALL)
    go_offline(fn, A)
    for wall in (WALL, WALL + REFRESH, WALL + 100 * REFRESH):
        assert tick(fn, wall) == []
    assert fn.asserted == {} and reasserts(fn) == 0


def test_a_shard_spilled_past_trucks_in_memory_is_indexed_from_flinks_state() -> None:
    fn, _ = refreshing(in_memory=1)
    at(fn, WALL)
    triggers = go_offline(fn, A, B)
    assert SHARD in fn.trucks.spilled
    assert sorted(tick(fn, WALL)) == sorted(triggers)
    assert tick(fn, WALL + REFRESH - 1) == []
    assert sorted(tick(fn, WALL + REFRESH)) == sorted(triggers)
