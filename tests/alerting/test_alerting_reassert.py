"""Re-assertion and ``resolve_timeout`` (issue 29), with a fake clock: the engine resolves a
firing key not re-asserted in time exactly as a resolve record would; the assertion times are
persisted with the engine's changes; the loop sweeps only while caught up, never counting an
assertion as older than its own start; a re-asserted open key is re-notified per
``repeat_interval``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from alerting_receiver import alert_doc

from alerting import ConfigError
from alerting.config import default_config_path, format_duration_ms, load_config, parse_config
from alerting.engine import Engine, Notification
from alerting.kafka_io import InRecord
from alerting.metrics import Metrics
from alerting.records import Alert, decode
from alerting.service import Dispatcher, Settings
from alerting.store import Store

pytestmark = pytest.mark.unit

TIMEOUT = 60_000
CFG = f"""
global: {{resolve_timeout: {TIMEOUT // 1000}s}}
receivers:
  - {{name: hook, type: webhook, url: "http://127.0.0.1:1/a", secret: s}}
  - {{name: pager, type: pagerduty, routing_key: k}}
route:
  receiver: hook
  group_by: [group, class]
  group_wait: 0s
  group_interval: 0s
  repeat_interval: 10m
  routes:
    - match: {{severity: critical}}
      receiver: pager
      continue: true
    - receiver: hook
"""


def mk(**kw: Any) -> Alert:
    a = decode(orjson.dumps(alert_doc(**kw)))
    assert isinstance(a, Alert)
    return a


def flush(engine: Engine, now: int) -> list[Notification]:
    notes, _ = engine.flush_due(now)
    return notes


def sent(engine: Engine, now: int) -> list[tuple[str, str, str]]:
    return [(n.receiver, n.dedup_key, n.event_action) for n in flush(engine, now)]


@pytest.fixture()
def engine() -> Engine:
    return Engine(parse_config(CFG, "t.yaml"))


# -- configuration ------------------------------------------------------------------------------
def test_resolve_timeout_defaults_to_15m_is_set_by_global_and_0_turns_it_off() -> None:
    base = CFG.split("\n", 2)[2]
    assert parse_config(base, "t.yaml").global_.resolve_timeout_ms == 900_000
    assert load_config(default_config_path(), env={}).global_.resolve_timeout_ms == 900_000
    assert parse_config(CFG, "t.yaml").global_.resolve_timeout_ms == TIMEOUT
    off = parse_config("global: {resolve_timeout: 0}\n" + base, "t.yaml")
    assert off.global_.resolve_timeout_ms == 0


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("{resolve_timeout: 500ms}", "global.resolve_timeout: Value error, must be 0 (off)"),
        ("{resolve_timeout: soon}", "global.resolve_timeout: Value error, 'soon' is not a dur"),
        ("{resolve_timout: 5m}", "global.resolve_timout: Extra inputs are not permitted"),
        ("15m", "global: Input should be a valid dictionary"),
    ],
)
def test_a_bad_global_section_names_the_field(glob: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"global: {glob}\n" + CFG.split("\n", 2)[2], "alerts.yaml")
    assert str(err.value).startswith(f"alerts.yaml: {problem}")


def test_durations_are_formatted_as_they_are_written() -> None:
    assert [format_duration_ms(v) for v in (900_000, 5_400_000, 3_000, 1_500, 0)] == [
        "15m",
        "1h30m",
        "3s",
        "1s500ms",
        "0s",
    ]


# -- engine ---------------------------------------------------------------------------------------
def test_a_key_not_reasserted_is_resolved_like_a_resolve_record(engine: Engine) -> None:
    engine.ingest(mk(subject="T1", severity="critical", stop_id="S9"), 0)
    engine.ingest(mk(subject="T2"), 0)
    assert sorted(sent(engine, 0)) == [
        ("hook", "truck_offline:T1", "trigger"),
        ("hook", "truck_offline:T2", "trigger"),
        ("pager", "truck_offline:T1", "trigger"),
    ]
    engine.ingest(mk(subject="T2"), 30_000)  # T2 is re-asserted, T1 is not
    assert engine.resolve_timed_out(TIMEOUT - 1, TIMEOUT, 0) == []
    [res] = engine.resolve_timed_out(TIMEOUT, TIMEOUT, 0)
    assert (res.dedup_key, res.event_action) == ("truck_offline:T1", "resolve")
    notes = flush(engine, TIMEOUT)
    # to both receivers that have it open, although a resolve's own labels route to hook only
    assert sorted((n.receiver, n.dedup_key, n.event_action) for n in notes) == [
        ("hook", "truck_offline:T1", "resolve"),
        ("pager", "truck_offline:T1", "resolve"),
    ]
    p = notes[0].event["payload"]
    trig = mk(subject="T1", severity="critical").payload
    assert trig is not None
    for k in ("source", "severity", "component", "group", "class"):
        assert p[k] == trig[k]
    assert p["summary"] == (
        "Resolved because its source stopped re-asserting it for 1m: truck_offline T1"
    )
    assert p["custom_details"] == {
        **trig["custom_details"],
        "stop_id": "S9",
        "reason": "resolve_timeout",
    }
    assert "truck_offline:T1" not in engine.state.active
    assert "truck_offline:T1" not in engine.state.asserted
    # resolved once: the next sweep finds nothing more for T1; T2 times out on its own clock
    assert engine.resolve_timed_out(30_000 + TIMEOUT - 1, TIMEOUT, 0) == []
    [res2] = engine.resolve_timed_out(30_000 + TIMEOUT, TIMEOUT, 0)
    assert res2.dedup_key == "truck_offline:T2"


def test_acknowledge_reasserts_and_resolve_ends_the_watch(engine: Engine) -> None:
    engine.ingest(mk(subject="T1"), 0)
    engine.ingest(mk(subject="T2"), 0)
    flush(engine, 0)
    engine.ingest(mk(subject="T1", action="acknowledge"), 50_000)
    engine.ingest(mk(subject="T2", action="resolve"), 50_000)
    flush(engine, 50_000)
    assert engine.timed_out(100_000, TIMEOUT, 0) == []
    [res] = engine.resolve_timed_out(110_000, TIMEOUT, 0)
    # copied from the last trigger, not from the acknowledge
    assert res.dedup_key == "truck_offline:T1" and res.payload is not None
    assert res.payload["summary"].endswith(": truck_offline T1")


def test_an_assertion_counts_as_no_older_than_the_process_start(engine: Engine) -> None:
    engine.ingest(mk(subject="T1"), 0)
    flush(engine, 0)
    started = 10 * TIMEOUT  # a dispatcher restarted long after the last assertion
    assert engine.timed_out(started + 1, TIMEOUT, started) == []
    assert engine.timed_out(started + TIMEOUT - 1, TIMEOUT, started) == []
    assert engine.timed_out(started + TIMEOUT, TIMEOUT, started) == ["truck_offline:T1"]


def test_a_trigger_after_a_timeout_resolve_opens_a_new_incident(engine: Engine) -> None:
    engine.ingest(mk(subject="T1"), 0)
    flush(engine, 0)
    engine.resolve_timed_out(TIMEOUT, TIMEOUT, 0)
    assert sent(engine, TIMEOUT) == [("hook", "truck_offline:T1", "resolve")]
    engine.ingest(mk(subject="T1"), TIMEOUT + 1000)  # well within repeat_interval
    assert sent(engine, TIMEOUT + 1000) == [("hook", "truck_offline:T1", "trigger")]


def test_a_reasserted_open_key_is_renotified_per_repeat_interval(engine: Engine) -> None:
    repeat = 600_000
    engine.ingest(mk(subject="T1"), 0)
    assert sent(engine, 0) == [("hook", "truck_offline:T1", "trigger")]
    for t in range(30_000, repeat, 30_000):  # refreshes within repeat_interval: suppressed
        engine.ingest(mk(subject="T1"), t)
        notes, dropped = engine.flush_due(t)
        assert notes == [] and [d.reason for d in dropped] == ["repeat"]
    assert engine.timed_out(repeat - 1, TIMEOUT, 0) == []  # yet each one re-asserted it
    engine.ingest(mk(subject="T1"), repeat)
    assert sent(engine, repeat) == [("hook", "truck_offline:T1", "trigger")]


def test_a_key_only_acknowledged_is_resolved_from_its_labels(engine: Engine) -> None:
    ack = decode(orjson.dumps({"event_action": "acknowledge", "dedup_key": "truck_offline:T7"}))
    assert isinstance(ack, Alert)
    engine.ingest(ack, 0)
    [res] = engine.resolve_timed_out(TIMEOUT, TIMEOUT, 0)
    assert res.payload is not None
    assert (res.payload["class"], res.payload["source"], res.payload["severity"]) == (
        "truck_offline",
        "fleetpulse-alerting",
        "info",
    )
    assert res.payload["custom_details"] == {"reason": "resolve_timeout"}


# -- store ----------------------------------------------------------------------------------------
def test_assertions_are_persisted_with_the_engine_changes(store: Store) -> None:
    cfg = parse_config(CFG, "t.yaml")
    e = Engine(cfg, store.load_engine_state())
    e.ingest(mk(subject="T1"), 1000)
    e.ingest(mk(subject="T2"), 1000)
    store.commit_batch(e.state, flush(e, 1000), 1000)
    e.ingest(mk(subject="T2", action="acknowledge"), 5000)
    e.ingest(mk(subject="T1", action="resolve"), 5000)
    store.commit_batch(e.state, flush(e, 5000), 5000)
    again = store.load_engine_state()
    assert {k: a.seen_ms for k, a in again.asserted.items()} == {"truck_offline:T2": 5000}
    assert again.asserted["truck_offline:T2"].alert == e.state.asserted["truck_offline:T2"].alert
    [res] = Engine(cfg, again).resolve_timed_out(5000 + TIMEOUT, TIMEOUT, 0)
    assert res.dedup_key == "truck_offline:T2"


def test_a_database_without_assertions_is_migrated(tmp_path: Path) -> None:
    """Keys firing before the upgrade have no assertion: they count from the process start."""
    s = Store(tmp_path / "state")
    e = Engine(parse_config(CFG, "t.yaml"), s.load_engine_state())
    e.ingest(mk(subject="T1"), 1000)
    s.commit_batch(e.state, flush(e, 1000), 1000)
    s.close()
    db = sqlite3.connect(tmp_path / "state" / "alerting.db")
    db.execute("DROP TABLE asserted")
    db.commit()
    db.close()
    s = Store(tmp_path / "state")
    try:
        st = s.load_engine_state()
        assert st.asserted == {} and "truck_offline:T1" in st.active
        e = Engine(parse_config(CFG, "t.yaml"), st)
        assert e.timed_out(10 * TIMEOUT, TIMEOUT, 10 * TIMEOUT - 1) == []
        [res] = e.resolve_timed_out(10 * TIMEOUT, TIMEOUT, 9 * TIMEOUT)
        assert res.payload is not None and res.payload["severity"] == "error"  # from its labels
        assert res.payload["group"] == "WEST"
    finally:
        s.close()


# -- the loop -------------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class FakeSource:
    def __init__(self) -> None:
        self.batches: list[list[InRecord]] = []
        self.at_end = True  # what the broker says of the consumer's position

    def caught_up(self, max_lag: int) -> bool:
        return self.at_end

    def poll(self, timeout_ms: int, max_records: int) -> list[InRecord]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, asynchronous: bool = False) -> bool:
        return True


class FakeProducer:
    def in_flight(self) -> int:
        return 0

    def flush(self, timeout_s: float) -> int:
        return 0

    def serve(self) -> None:
        pass


@pytest.fixture()
def loop(tmp_path: Path) -> Iterator[tuple[Dispatcher, FakeSource, Clock]]:
    clock = Clock(1_000_000)
    d = Dispatcher(
        parse_config(CFG, "t.yaml"),
        Settings(bootstrap="unused", state_dir=str(tmp_path / "s"), max_poll_records=3),
        metrics=Metrics(),
        clock=clock,
    )
    yield d, FakeSource(), clock
    d.recorder.stop()
    d.store.close()


def records(*docs: dict[str, Any]) -> list[InRecord]:
    return [InRecord("fleet.alerts", 0, i, 1, orjson.dumps(doc)) for i, doc in enumerate(docs)]


def step(d: Dispatcher, source: FakeSource) -> None:
    d._step(source, FakeProducer())  # type: ignore[arg-type]


def resolves(d: Dispatcher) -> list[str]:
    return [i.dedup_key for i in d.store.outbox() if i.event_action == "resolve"]


def timeout_resolves(d: Dispatcher) -> float:
    return d.metrics.value("fleetpulse_alerting_timeout_resolves_total")


def test_the_loop_sweeps_only_while_caught_up(loop: tuple[Dispatcher, FakeSource, Clock]) -> None:
    d, source, clock = loop
    assert d.sweep_interval_ms() == 5000  # a tenth of 60 s, at most 5 s
    source.batches = [records(alert_doc(subject="T1"), alert_doc(subject="T2"))]
    step(d, source)
    clock.now += TIMEOUT + 10_000
    # a full batch (3 = max_poll_records) of other keys: the dispatcher may be lagging, and
    # T1's re-assertion may be in its backlog
    source.batches = [records(*(alert_doc(subject=f"X{i}") for i in range(3)))]
    step(d, source)
    assert resolves(d) == [] and timeout_resolves(d) == 0
    source.at_end = False  # a short batch, but the broker is unreachable or says we lag
    source.batches = [records(alert_doc(subject="T2"))]  # T2 re-asserted
    step(d, source)
    assert resolves(d) == [] and timeout_resolves(d) == 0
    source.at_end = True  # caught up
    clock.now += d.sweep_interval_ms()
    step(d, source)
    assert resolves(d) == ["truck_offline:T1"] and timeout_resolves(d) == 1
    clock.now += 1000  # within the sweep interval: no sweep
    step(d, source)
    clock.now += TIMEOUT
    step(d, source)
    assert sorted(resolves(d)) == [f"truck_offline:{k}" for k in ("T1", "T2", "X0", "X1", "X2")]
    assert timeout_resolves(d) == 5


def test_a_restarted_loop_gives_the_sources_a_full_timeout(tmp_path: Path) -> None:
    clock = Clock(1_000_000)
    settings = Settings(bootstrap="unused", state_dir=str(tmp_path / "s"))
    d = Dispatcher(parse_config(CFG, "t.yaml"), settings, clock=clock)
    source = FakeSource()
    source.batches = [records(alert_doc(subject="T1"), alert_doc(subject="T2"))]
    step(d, source)
    d.recorder.stop()
    d.store.close()
    clock.now += 5 * TIMEOUT  # down for five timeouts
    d = Dispatcher(parse_config(CFG, "t.yaml"), settings, clock=clock)
    try:
        for _ in range(10):
            clock.now += TIMEOUT // 10 - 1
            step(d, source)
        assert resolves(d) == []
        source.batches = [records(alert_doc(subject="T2"))]
        step(d, source)
        clock.now += d.sweep_interval_ms()
        step(d, source)
        assert resolves(d) == ["truck_offline:T1"]
    finally:
        d.recorder.stop()
        d.store.close()


def test_resolve_timeout_0_never_resolves(tmp_path: Path) -> None:
    clock = Clock(1_000_000)
    off = CFG.replace(f"resolve_timeout: {TIMEOUT // 1000}s", "resolve_timeout: 0")
    d = Dispatcher(
        parse_config(off, "t.yaml"),
        Settings(bootstrap="unused", state_dir=str(tmp_path / "s")),
        clock=clock,
    )
    try:
        source = FakeSource()
        source.batches = [records(alert_doc(subject="T1"))]
        step(d, source)
        clock.now += 100 * TIMEOUT
        step(d, source)
        assert resolves(d) == [] and "truck_offline:T1" in d.state.active
    finally:
        d.recorder.stop()
        d.store.close()
