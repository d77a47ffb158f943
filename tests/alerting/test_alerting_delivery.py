"""Receiver workers against a real local HTTP receiver: 202, 400, 429 + Retry-After, 500, slow,
never; retries, dead letters, circuit breaker, isolation, ordering, replay."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from alerting_receiver import Receiver, alert_doc
from click.testing import CliRunner

from alerting.cli import alerts
from alerting.config import ReceiverConfig, parse_config
from alerting.delivery import ReceiverWorker
from alerting.engine import EngineState, Notification
from alerting.metrics import Metrics
from alerting.records import Alert, decode
from alerting.service import replay
from alerting.signature import verify
from alerting.store import OutboxItem, Store
from fleetpulse.waiting import wait_until

pytestmark = pytest.mark.integration


def rcfg(url: str, **kw: Any) -> ReceiverConfig:
    base: dict[str, Any] = {
        "name": "hook",
        "type": "webhook",
        "url": url,
        "secret": "s3cret",
        "timeout": "300ms",
        "max_in_flight": 4,
        "retry": {"max_attempts": 4, "initial_backoff": "10ms", "max_backoff": "50ms"},
        "circuit_breaker": {"failure_threshold": 50, "reset_timeout": "100ms"},
    }
    base.update(kw)
    return ReceiverConfig.model_validate(base)


def enqueue(store: Store, receiver: str, *docs: dict[str, Any]) -> list[OutboxItem]:
    notes = []
    for d in docs:
        a = decode(orjson.dumps(d), record_ts_ms=int(time.time() * 1000))
        assert isinstance(a, Alert)
        notes.append(Notification(receiver, a.dedup_key, a.event_action, a.event(), a.record_ts_ms))
    return store.commit_batch(EngineState(), notes, int(time.time() * 1000))


def run_worker(
    cfg: ReceiverConfig, store: Store, metrics: Metrics, items: list[OutboxItem]
) -> ReceiverWorker:
    w = ReceiverWorker(cfg, store, metrics).start()
    w.submit(items)
    return w


@pytest.mark.parametrize("client", ["stdlib", "httpx"])
def test_delivered_signed_and_valid(receiver: Receiver, store: Store, client: str) -> None:
    m = Metrics()
    w = run_worker(
        rcfg(receiver.url("/a"), http_client=client), store, m, enqueue(store, "hook", alert_doc())
    )
    try:
        wait_until(lambda: w.pending() == 0, 5, "delivery")
    finally:
        w.stop()
    [req] = receiver.got("/a")
    assert receiver.all_problems() == []
    ok, why = verify(
        "s3cret",
        req.headers["X-Fleetpulse-Delivery-Id"],
        req.headers["X-Fleetpulse-Timestamp"],
        req.headers["X-Fleetpulse-Signature"],
        req.raw,
        int(time.time()),
    )
    assert ok, why
    assert req.body["routing_key"] == "hook" and req.body["dedup_key"] == "truck_offline:T1"
    assert store.outbox() == [] and store.dead_letters() == []
    assert (
        m.value("fleetpulse_alerting_deliveries_total", receiver="hook", outcome="delivered") == 1
    )
    assert m.value("fleetpulse_alerting_delivery_latency_seconds_count", receiver="hook") == 1


def test_400_is_not_retried_and_goes_to_dead_letters(receiver: Receiver, store: Store) -> None:
    receiver.script("/a", "400")
    m = Metrics()
    w = run_worker(rcfg(receiver.url("/a")), store, m, enqueue(store, "hook", alert_doc()))
    try:
        wait_until(lambda: w.pending() == 0, 5, "dead letter")
    finally:
        w.stop()
    assert len(receiver.got("/a", status=None)) == 1
    [dl] = store.dead_letters()
    assert "HTTP 400" in dl.last_error and "not retried" in dl.last_error
    assert m.value("fleetpulse_alerting_dead_letters_total", receiver="hook") == 1


@pytest.mark.parametrize("client", ["stdlib", "httpx"])
@pytest.mark.parametrize(
    "script", [("429", "202"), ("500", "500", "202"), ("slow", "202"), ("never", "202")]
)
def test_retryable_failures_are_retried(
    receiver: Receiver, store: Store, script: tuple[str, ...], client: str
) -> None:
    receiver.script("/a", *script)
    receiver.retry_after = "0"
    m = Metrics()
    w = run_worker(
        rcfg(receiver.url("/a"), timeout="100ms", http_client=client),
        store,
        m,
        enqueue(store, "hook", alert_doc()),
    )
    try:
        wait_until(lambda: receiver.got("/a") and w.pending() == 0, 5, "delivery after retry")
    finally:
        w.stop()
    assert m.value("fleetpulse_alerting_retries_total", receiver="hook") == len(script) - 1
    assert store.outbox() == [] and store.dead_letters() == []


def test_retry_after_is_honoured(receiver: Receiver, store: Store) -> None:
    receiver.script("/a", "429", "202")
    receiver.retry_after = "1"
    w = run_worker(
        rcfg(receiver.url("/a"), retry={"initial_backoff": "10ms", "max_backoff": "5s"}),
        store,
        Metrics(),
        enqueue(store, "hook", alert_doc()),
    )
    try:
        wait_until(lambda: receiver.got("/a"), 5, "delivery")
    finally:
        w.stop()
    first = receiver.got("/a", status=429)[0].at
    assert receiver.got("/a")[0].at - first >= 0.9


def test_never_answering_receiver_ends_in_dead_letters_after_budget(
    receiver: Receiver, store: Store
) -> None:
    receiver.script("/dead", "never")
    w = run_worker(
        rcfg(
            receiver.url("/dead"),
            timeout="100ms",
            retry={"max_attempts": 2, "initial_backoff": "10ms"},
        ),
        store,
        Metrics(),
        enqueue(store, "hook", alert_doc()),
    )
    try:
        wait_until(lambda: store.dead_letters(), 5, "dead letter")
    finally:
        w.stop()
    [dl] = store.dead_letters()
    assert "timeout" in dl.last_error and dl.attempts == 2
    assert store.outbox() == []


def test_circuit_breaker_stops_hammering_a_failing_receiver(
    receiver: Receiver, store: Store
) -> None:
    receiver.script("/a", "500")
    m = Metrics()
    items = enqueue(store, "hook", *[alert_doc(subject=f"T{i}") for i in range(10)])
    w = run_worker(
        rcfg(
            receiver.url("/a"),
            max_in_flight=1,
            circuit_breaker={"failure_threshold": 3, "reset_timeout": "30s"},
        ),
        store,
        m,
        items,
    )
    try:
        wait_until(
            lambda: m.value("fleetpulse_alerting_circuit_state", receiver="hook") == 1,
            5,
            "breaker open",
        )
        n = len(receiver.got("/a", status=None))
        time.sleep(0.2)
        assert len(receiver.got("/a", status=None)) == n == 3
        assert w.breaker.state == "open"
        assert len(store.outbox()) == 10  # nothing lost while the breaker is open
    finally:
        w.stop()


def test_dead_receiver_does_not_delay_another(receiver: Receiver, store: Store) -> None:
    receiver.script("/dead", "never")
    m = Metrics()
    dead = run_worker(
        rcfg(receiver.url("/dead"), name="dead", timeout="5s", max_in_flight=2),
        store,
        m,
        enqueue(store, "dead", *[alert_doc(subject=f"T{i}") for i in range(20)]),
    )
    t0 = time.monotonic()
    live = run_worker(
        rcfg(receiver.url("/live"), name="live"),
        store,
        m,
        enqueue(store, "live", *[alert_doc(subject=f"T{i}") for i in range(20)]),
    )
    try:
        wait_until(lambda: len(receiver.got("/live")) == 20, 5, "live deliveries")
        assert time.monotonic() - t0 < 1.0
        assert dead.pending() == 20
    finally:
        live.stop()
        dead.stop(timeout_s=0.2)


def test_one_key_is_delivered_in_order(receiver: Receiver, store: Store) -> None:
    receiver.script("/a", "500", "202")
    items = enqueue(
        store, "hook", alert_doc(), alert_doc(action="resolve"), alert_doc(subject="T2")
    )
    w = run_worker(rcfg(receiver.url("/a")), store, Metrics(), items)
    try:
        wait_until(lambda: len(receiver.got("/a")) == 3, 5, "deliveries")
    finally:
        w.stop()
    t1 = [
        r.body["event_action"]
        for r in receiver.got("/a")
        if r.body["dedup_key"] == "truck_offline:T1"
    ]
    assert t1 == ["trigger", "resolve"]


def test_replay_resends_dead_letters(receiver: Receiver, store: Store) -> None:
    receiver.script("/a", "400")
    w = run_worker(
        rcfg(receiver.url("/a")),
        store,
        Metrics(),
        enqueue(store, "hook", alert_doc(), alert_doc(subject="T2")),
    )
    try:
        wait_until(lambda: len(store.dead_letters()) == 2, 5, "dead letters")
    finally:
        w.stop()
    cfg = parse_config(
        f"""
receivers: [{{name: hook, type: webhook, url: "{receiver.url("/a")}", secret: s3cret}}]
route: {{receiver: hook}}
""",
        "r.yaml",
    )
    res0 = replay(cfg, store)  # still rejected: kept, with the new error
    assert res0.delivered == 0 and len(res0.failed) == 2 and len(store.dead_letters()) == 2
    listed = CliRunner().invoke(alerts, ["replay", "--list", "--state-dir", str(store.dir)])
    assert listed.exit_code == 0 and listed.output.count("truck_offline:T") == 2
    receiver.script("/a", "202")
    cfg_file = store.dir / "replay.yaml"
    cfg_file.write_text(f"""
receivers: [{{name: hook, type: webhook, url: "{receiver.url("/a")}", secret: s3cret}}]
route: {{receiver: hook}}
""")
    res = CliRunner().invoke(
        alerts, ["replay", "--config", str(cfg_file), "--state-dir", str(store.dir)]
    )
    assert res.exit_code == 0, res.output
    assert "replayed 2 dead letter(s); 0 failed" in res.output
    assert store.dead_letters() == []
    assert {k for k, _ in receiver.keys("/a")} == {"truck_offline:T1", "truck_offline:T2"}
    assert receiver.all_problems() == []


def test_alerts_waiting_behind_an_open_circuit_expire_to_dead_letters(
    receiver: Receiver, store: Store
) -> None:
    receiver.script("/a", "500")
    items = enqueue(store, "hook", *[alert_doc(subject=f"T{i}") for i in range(5)])
    w = run_worker(
        rcfg(
            receiver.url("/a"),
            max_in_flight=1,
            retry={"max_attempts": 50, "initial_backoff": "10ms", "max_age": "300ms"},
            circuit_breaker={"failure_threshold": 1, "reset_timeout": "1h"},
        ),
        store,
        Metrics(),
        items,
    )
    try:
        wait_until(lambda: w.pending() == 0, 5, "all expired")
    finally:
        w.stop()
    assert len(receiver.got("/a", status=None)) == 1  # the breaker opened after one failure
    dls = store.dead_letters()
    assert len(dls) == 5 and store.outbox() == []
    assert sum("circuit open" in d.last_error for d in dls) >= 4


def test_pagerduty_receiver_posts_events_v2_with_its_routing_key(
    receiver: Receiver, store: Store
) -> None:
    cfg = ReceiverConfig.model_validate(
        {
            "name": "pd",
            "type": "pagerduty",
            "url": receiver.url("/v2/enqueue"),
            "routing_key": "R" * 32,
            "headers": {"X-Env": "t"},
        }
    )
    w = run_worker(
        cfg, store, Metrics(), enqueue(store, "pd", alert_doc(), alert_doc(action="resolve"))
    )
    try:
        wait_until(lambda: len(receiver.got("/v2/enqueue")) == 2, 5, "deliveries")
    finally:
        w.stop()
    trig, res = receiver.got("/v2/enqueue")
    assert receiver.all_problems() == []
    assert trig.body["routing_key"] == res.body["routing_key"] == "R" * 32
    assert (trig.body["event_action"], res.body["event_action"]) == ("trigger", "resolve")
    assert trig.body["payload"]["severity"] == "error"
    assert trig.headers["X-Env"] == "t" and "X-Fleetpulse-Signature" not in trig.headers


def test_replay_never_sends_a_trigger_whose_resolve_was_delivered(
    receiver: Receiver, store: Store
) -> None:
    # T1 accepted, its escalation rejected (dead letter), its resolve accepted; then T2
    # rejected, so its resolve is not sent (the receiver never opened T2)
    cfg = rcfg(receiver.url("/a"))
    items = []
    for script, docs in [
        (
            ("202", "400", "202"),
            [alert_doc(), alert_doc(severity="critical"), alert_doc(action="resolve")],
        ),
        (("400",), [alert_doc(subject="T2"), alert_doc(subject="T2", action="resolve")]),
    ]:
        receiver.script("/a", *script)
        batch = enqueue(store, "hook", *docs)
        items += batch
        w = run_worker(cfg, store, Metrics(), batch)
        try:
            wait_until(lambda w=w: w.pending() == 0, 5, "every event settled")
        finally:
            w.stop()
    sent = [(r.body["dedup_key"], r.body["event_action"]) for r in receiver.got("/a", None)]
    assert sent == [("truck_offline:T1", "trigger")] * 2 + [
        ("truck_offline:T1", "resolve"),
        ("truck_offline:T2", "trigger"),
    ]
    dead = store.dead_letters()
    assert [(d.dedup_key, d.superseded_by) for d in dead] == [
        ("truck_offline:T1", items[2].id),
        ("truck_offline:T2", items[4].id),
    ]
    receiver.script("/a", "202")
    cfg_file = store.dir / "replay.yaml"
    cfg_file.write_text(f"""
receivers: [{{name: hook, type: webhook, url: "{receiver.url("/a")}", secret: s3cret}}]
route: {{receiver: hook}}
""")
    res = CliRunner().invoke(
        alerts, ["replay", "--config", str(cfg_file), "--state-dir", str(store.dir)]
    )
    assert res.exit_code == 0, res.output
    assert "replayed 0 dead letter(s); 0 failed; 2 skipped" in res.output
    assert f"skipped {dead[0].id}: a later event of its key (#{items[2].id}) settled" in res.output
    assert len(receiver.got("/a", None)) == 4  # nothing re-sent
    assert len(store.dead_letters()) == 2  # kept, listed as stale
    listed = CliRunner().invoke(alerts, ["replay", "--list", "--state-dir", str(store.dir)])
    assert listed.output.count("stale: event") == 2
