"""Grouping, repeat suppression, escalation, resolve, inhibition and silences (pure engine)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from alerting_receiver import alert_doc

from alerting.config import parse_config
from alerting.engine import Engine, Notification, Silence
from alerting.matchers import Matcher
from alerting.records import Alert, decode

pytestmark = pytest.mark.unit

CFG = """
receivers:
  - {name: hook, type: webhook, url: "http://h/a", secret: s}
  - {name: pager, type: pagerduty, routing_key: k}
route:
  receiver: hook
  group_by: [group, class]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 10s
  routes:
    - match: {severity: critical}
      receiver: pager
      continue: true
    - receiver: hook   # catch-all: critical alerts go to both
inhibit_rules:
  - source_match: {class: truck_offline}
    target_match: {class: truck_stopped_unplanned}
    equal: [truck_id]
"""


def mk(**kw: Any) -> Alert:
    a = decode(orjson.dumps(alert_doc(**kw)))
    assert isinstance(a, Alert)
    return a


@pytest.fixture()
def engine() -> Engine:
    return Engine(parse_config(CFG, "t.yaml"))


def sent(engine: Engine, now: int) -> list[tuple[str, str, str, str | None]]:
    notes, _ = engine.flush_due(now)
    return [(n.receiver, n.dedup_key, n.event_action, _sev(n)) for n in notes]


def _sev(n: Notification) -> str | None:
    p = n.event.get("payload")
    return p["severity"] if p else None


def test_group_wait_holds_then_sends_the_group_together(engine: Engine) -> None:
    engine.ingest(mk(subject="T1"), 0)
    engine.ingest(mk(subject="T2"), 50)
    assert engine.next_flush_ms() == 100
    assert sent(engine, 99) == []
    out = sent(engine, 100)
    assert sorted(k for _, k, _, _ in out) == ["truck_offline:T1", "truck_offline:T2"]


def test_group_interval_batches_later_changes(engine: Engine) -> None:
    engine.ingest(mk(subject="T1"), 0)
    assert len(sent(engine, 100)) == 1
    engine.ingest(mk(subject="T3"), 200)
    assert engine.next_flush_ms() == 1100  # last flush + group_interval
    assert sent(engine, 1000) == []
    assert [k for _, k, _, _ in sent(engine, 1100)] == ["truck_offline:T3"]
    # a different group (other region) has its own timers
    engine.ingest(mk(subject="T4", group="SOUTH"), 1200)
    assert engine.next_flush_ms() == 1300


def test_burst_of_one_key_collapses_to_latest(engine: Engine) -> None:
    engine.ingest(mk(severity="warning"), 0)
    engine.ingest(mk(severity="error"), 10)
    assert sent(engine, 100) == [("hook", "truck_offline:T1", "trigger", "error")]


def test_repeat_suppressed_within_repeat_interval_then_resent(engine: Engine) -> None:
    engine.ingest(mk(), 0)
    assert len(sent(engine, 100)) == 1
    engine.ingest(mk(), 2000)
    notes, dropped = engine.flush_due(2000)
    assert notes == [] and [d.reason for d in dropped] == ["repeat"]
    engine.ingest(mk(), 10_200)
    assert len(sent(engine, 10_200)) == 1  # repeat_interval passed


def test_escalation_is_sent_and_routes_to_new_receiver(engine: Engine) -> None:
    engine.ingest(mk(severity="warning"), 0)
    assert sent(engine, 100) == [("hook", "truck_offline:T1", "trigger", "warning")]
    engine.ingest(mk(severity="critical"), 2000)
    out = sent(engine, 2100)  # the pager group is new: it waits group_wait
    assert sorted(out) == [
        ("hook", "truck_offline:T1", "trigger", "critical"),
        ("pager", "truck_offline:T1", "trigger", "critical"),
    ]


def test_resolve_sent_once_only_for_triggered_and_to_every_open_receiver(engine: Engine) -> None:
    engine.ingest(mk(action="resolve", subject="T9"), 0)
    notes, dropped = engine.flush_due(100)
    assert notes == [] and [d.reason for d in dropped] == ["not_open"]

    engine.ingest(mk(severity="critical"), 200)
    assert len(sent(engine, 1100)) == 2  # hook + pager (hook group: group_interval)
    # resolve carries a lower severity: routing alone would only reach hook
    engine.ingest(mk(action="resolve", severity="info"), 3000)
    assert sorted(r for r, _, a, _ in sent(engine, 3000) if a == "resolve") == ["hook", "pager"]
    engine.ingest(mk(action="resolve", severity="info"), 5000)
    assert sent(engine, 5000) == []
    assert engine.state.open == {}


def test_resolve_without_payload_reaches_open_receivers(engine: Engine) -> None:
    engine.ingest(mk(), 0)
    sent(engine, 100)
    r = decode(orjson.dumps({"event_action": "resolve", "dedup_key": "truck_offline:T1"}))
    assert isinstance(r, Alert)
    engine.ingest(r, 5000)
    assert sent(engine, 5000) == [("hook", "truck_offline:T1", "resolve", None)]


def test_acknowledge_only_for_open(engine: Engine) -> None:
    engine.ingest(mk(action="acknowledge"), 0)
    assert sent(engine, 100) == []
    engine.ingest(mk(), 200)
    sent(engine, 1200)
    engine.ingest(mk(action="acknowledge"), 3000)
    assert [a for _, _, a, _ in sent(engine, 3000)] == ["acknowledge"]


def test_offline_inhibits_stopped_for_same_truck_only(engine: Engine) -> None:
    engine.ingest(mk(cls="truck_stopped_unplanned", subject="T1", severity="warning"), 0)
    engine.ingest(mk(cls="truck_offline", subject="T1"), 20)
    engine.ingest(mk(cls="truck_stopped_unplanned", subject="T2", severity="warning"), 30)
    notes, dropped = engine.flush_due(200)
    assert sorted(n.dedup_key for n in notes) == ["truck_offline:T1", "truck_stopped_unplanned:T2"]
    assert [(d.dedup_key, d.reason) for d in dropped] == [
        ("truck_stopped_unplanned:T1", "inhibited")
    ]
    # the offline alert resolves: the stopped alert is no longer muted
    engine.ingest(mk(cls="truck_offline", subject="T1", action="resolve"), 2000)
    engine.ingest(mk(cls="truck_stopped_unplanned", subject="T1", severity="warning"), 2000)
    assert sorted((k, a) for _, k, a, _ in sent(engine, 3000)) == [
        ("truck_offline:T1", "resolve"),
        ("truck_stopped_unplanned:T1", "trigger"),
    ]


def test_silence_mutes_in_window_but_not_resolves(engine: Engine) -> None:
    engine.ingest(mk(subject="T1"), 0)
    sent(engine, 100)
    engine.silences = (
        Silence(
            "s1", (Matcher.parse("class=truck_offline"), Matcher.parse("group=~WE.*")), 1000, 5000
        ),
    )
    engine.ingest(mk(subject="T2"), 1000)
    notes, dropped = engine.flush_due(1100)
    assert notes == [] and dropped[0].reason == "silenced"
    engine.ingest(mk(subject="T3", group="SOUTH"), 1200)  # not matched by the silence
    assert [k for _, k, _, _ in sent(engine, 1300)] == ["truck_offline:T3"]
    engine.ingest(mk(subject="T1", action="resolve"), 2000)
    assert [a for _, _, a, _ in sent(engine, 2400)] == ["resolve"]  # incident not left open
    engine.ingest(mk(subject="T2"), 6000)  # silence over
    assert [k for _, k, _, _ in sent(engine, 6100)] == ["truck_offline:T2"]


def test_state_is_tracked_dirty_for_persistence(engine: Engine) -> None:
    engine.ingest(mk(), 0)
    st = engine.state
    assert st.dirty_active == {"truck_offline:T1"}
    assert st.dirty_pending
    engine.flush_due(100)
    assert ("truck_offline:T1", "hook") in st.dirty_open
    assert st.open_count() == {"hook": 1}
