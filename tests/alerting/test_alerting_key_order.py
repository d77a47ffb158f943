"""Per (receiver, ``dedup_key``) order and "open when accepted" (issue 29), as unit tests: the
worker with a fake transport that looks at the committed SQLite state at each request, the
replay rule, and the dispatcher dropping a dead-lettered trigger's open state."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from alerting_receiver import alert_doc

from alerting.backoff import Outcome
from alerting.config import ReceiverConfig, parse_config
from alerting.delivery import ReceiverWorker
from alerting.engine import EngineState, Notification
from alerting.metrics import Metrics
from alerting.records import Alert, decode
from alerting.service import Dispatcher, Settings, replay
from alerting.signature import DELIVERY_ID_HEADER
from alerting.store import OutboxItem, Store
from fleetpulse.waiting import wait_until

CONFIG = """
receivers: [{name: hook, type: webhook, url: "http://127.0.0.1:9/a", secret: s3cret}]
route: {receiver: hook}
"""


class CheckingTransport:
    """Answers from a script per (dedup_key, event_action) (default 202) and records, at each
    request, the outbox rows of the same key that are still *committed* (read through another
    connection, so uncommitted outcomes do not count)."""

    def __init__(self, db_path: Path, script: dict[tuple[str, str], list[int]]) -> None:
        self.db = sqlite3.connect(db_path, check_same_thread=False)
        self.script = script
        self.lock = threading.Lock()
        self.sent: list[tuple[int, str, str, list[int]]] = []  # (id, key, action, earlier)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Outcome:
        doc = orjson.loads(body)
        key, action = doc["dedup_key"], doc["event_action"]
        delivery_id = int(headers[DELIVERY_ID_HEADER])
        with self.lock:
            earlier = [
                r[0]
                for r in self.db.execute(
                    "SELECT id FROM outbox WHERE dedup_key=? AND id<?", (key, delivery_id)
                )
            ]
            self.sent.append((delivery_id, key, action, earlier))
            codes = self.script.get((key, action), [])
            status = codes.pop(0) if codes else 202
        time.sleep(0.002)  # keep several keys in flight at once
        return Outcome(status, "" if status < 300 else f"HTTP {status}")

    def close(self) -> None:
        self.db.close()


def rcfg(**kw: Any) -> ReceiverConfig:
    base: dict[str, Any] = {
        "name": "hook",
        "type": "webhook",
        "url": "http://127.0.0.1:9/a",
        "secret": "s3cret",
        "max_in_flight": 4,
        "retry": {"max_attempts": 4, "initial_backoff": "1ms", "max_backoff": "5ms"},
        "circuit_breaker": {"failure_threshold": 1000, "reset_timeout": "10ms"},
    }
    base.update(kw)
    return ReceiverConfig.model_validate(base)


def enqueue(store: Store, *docs: dict[str, Any]) -> list[OutboxItem]:
    notes = []
    for d in docs:
        a = decode(orjson.dumps(d), record_ts_ms=int(time.time() * 1000))
        assert isinstance(a, Alert)
        notes.append(Notification("hook", a.dedup_key, a.event_action, a.event(), a.record_ts_ms))
    return store.commit_batch(EngineState(), notes, int(time.time() * 1000))


def deliver(store: Store, t: CheckingTransport, items: list[OutboxItem]) -> None:
    w = ReceiverWorker(rcfg(), store, Metrics(), t).start()
    try:
        w.submit(items)
        wait_until(lambda: w.pending() == 0, 10, "every event settled")
    finally:
        w.stop()


def test_next_event_of_a_key_is_sent_only_after_the_previous_outcome_is_committed(
    store: Store,
) -> None:
    keys = [f"K{i}" for i in range(12)]
    docs = [alert_doc(subject=k) for k in keys]
    docs += [alert_doc(subject=k, severity="critical") for k in keys]
    docs += [alert_doc(subject=k, action="resolve") for k in keys]
    # retries keep order: the first trigger of K0 fails twice, its escalation once
    t = CheckingTransport(
        store.dir / "alerting.db", {("truck_offline:K0", "trigger"): [500, 503, 202, 500, 202]}
    )
    deliver(store, t, enqueue(store, *docs))
    t.close()
    assert store.outbox() == []
    for _, key, action, earlier in t.sent:
        assert earlier == [], f"{action} of {key} sent while an earlier event was uncommitted"
    k0 = [a for _, k, a, _ in t.sent if k == "truck_offline:K0"]
    assert k0 == ["trigger"] * 3 + ["trigger"] * 2 + ["resolve"]
    for k in keys:
        assert [a for _, key, a, _ in t.sent if key == f"truck_offline:{k}"][-1] == "resolve"


def test_resolve_behind_a_dead_lettered_trigger_is_skipped_and_replay_skips_the_trigger(
    store: Store,
) -> None:
    t = CheckingTransport(store.dir / "alerting.db", {("truck_offline:T1", "trigger"): [400]})
    trig, res = enqueue(store, alert_doc(), alert_doc(action="resolve"))
    deliver(store, t, [trig, res])
    assert [(k, a) for _, k, a, _ in t.sent] == [("truck_offline:T1", "trigger")]
    [dl] = store.dead_letters()
    assert dl.outbox_id == trig.id and dl.superseded_by == res.id
    assert not store.accepted("hook", "truck_offline:T1")
    again = CheckingTransport(store.dir / "alerting.db", {})
    result = replay(parse_config(CONFIG, "r.yaml"), store, transports={"hook": again})
    assert again.sent == [] and result.delivered == 0 and result.failed == []
    assert [i for i, _ in result.skipped] == [dl.id]
    assert "settled after it" in result.skipped[0][1]


def test_resolve_still_closes_an_accepted_trigger_when_an_escalation_died(store: Store) -> None:
    t = CheckingTransport(store.dir / "alerting.db", {("truck_offline:T1", "trigger"): [202, 400]})
    items = enqueue(store, alert_doc(), alert_doc(severity="critical"), alert_doc(action="resolve"))
    deliver(store, t, items)
    assert [a for _, _, a, _ in t.sent] == ["trigger", "trigger", "resolve"]
    [dl] = store.dead_letters()
    assert dl.superseded_by == items[2].id
    assert not store.accepted("hook", "truck_offline:T1")


def test_replay_sends_only_the_newest_event_of_a_key(store: Store) -> None:
    t = CheckingTransport(
        store.dir / "alerting.db",
        {("truck_offline:T1", "trigger"): [202, 400], ("truck_offline:T1", "resolve"): [400]},
    )
    items = enqueue(store, alert_doc(), alert_doc(severity="critical"), alert_doc(action="resolve"))
    deliver(store, t, items)
    esc, res = store.dead_letters()
    assert (esc.event_action, res.event_action) == ("trigger", "resolve")
    again = CheckingTransport(store.dir / "alerting.db", {})
    result = replay(parse_config(CONFIG, "r.yaml"), store, transports={"hook": again})
    assert [(k, a) for _, k, a, _ in again.sent] == [("truck_offline:T1", "resolve")]
    assert result.delivered == 1 and [i for i, _ in result.skipped] == [esc.id]
    assert "later resolve" in result.skipped[0][1]


def test_a_dead_lettered_trigger_is_no_repeat_and_its_resolve_waits_for_acceptance(
    tmp_path: Path,
) -> None:
    cfg = parse_config(
        CONFIG.replace("{receiver: hook}", "{receiver: hook, group_wait: 0s, group_interval: 0s}"),
        "c.yaml",
    )
    d = Dispatcher(cfg, Settings("127.0.0.1:1", str(tmp_path / "state")))
    try:
        key = "truck_offline:T1"

        def flush(doc: dict[str, Any], now: int) -> list[OutboxItem]:
            a = decode(orjson.dumps(doc), record_ts_ms=now)
            assert isinstance(a, Alert)
            d.engine.ingest(a, now)
            notes, _ = d.engine.flush_due(now)
            return d.store.commit_batch(d.state, notes, now)

        [first] = flush(alert_doc(), 1000)
        d.store.apply_outcomes([("dead", first, "HTTP 400", 1001)])
        assert flush(alert_doc(), 2000) == []  # still a repeat: nobody told the engine
        d._dead.append(first)
        d._expire_dead_triggers()
        [again] = flush(alert_doc(), 3000)  # the source re-asserts it: sent, not suppressed
        assert again.event_action == "trigger"
        # a later notification's entry is not expired by an older dead letter
        d._dead.append(first)
        d._expire_dead_triggers()
        assert d.state.open[key]["hook"].last_sent_ms == 3000
        # the resolve is still queued: the worker decides by acceptance
        d.store.apply_outcomes([("delivered", again, "", 3001)])
        [res] = flush(alert_doc(action="resolve"), 4000)
        assert res.event_action == "resolve" and d.store.accepted("hook", key)
    finally:
        d.recorder.stop()
        d.store.close()


def test_a_database_of_the_previous_release_is_migrated(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir()
    old = sqlite3.connect(d / "alerting.db")
    old.executescript(
        """
CREATE TABLE dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT, outbox_id INTEGER, receiver TEXT NOT NULL,
  dedup_key TEXT NOT NULL, event_action TEXT NOT NULL, event BLOB NOT NULL,
  attempts INTEGER NOT NULL, created_ms INTEGER NOT NULL, dead_at_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL);
CREATE TABLE open_alerts (
  dedup_key TEXT NOT NULL, receiver TEXT NOT NULL, action TEXT NOT NULL, severity TEXT,
  last_sent_ms INTEGER NOT NULL, group_id TEXT NOT NULL, PRIMARY KEY (dedup_key, receiver));
INSERT INTO open_alerts VALUES ('k1', 'hook', 'trigger', 'error', 5, 'g');
INSERT INTO dead_letters VALUES (1, 7, 'hook', 'k1', 'trigger', x'7b7d', 3, 1, 2, 'HTTP 400');
"""
    )
    old.commit()
    old.close()
    s = Store(d)
    try:
        assert s.accepted("hook", "k1")  # open before: its resolve still goes out
        [dl] = s.dead_letters()
        assert dl.superseded_by is None
        assert s.later_event(dl) is None
    finally:
        s.close()
    Store(d).close()  # a second open changes nothing
