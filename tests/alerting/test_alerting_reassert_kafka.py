"""Re-assertion and ``resolve_timeout`` (issue 29) with real Kafka and a real HTTP receiver: a
trigger lost to a receiver outage is delivered when the source re-sends it; a key not
re-asserted is resolved after ``resolve_timeout`` while a re-asserted one stays open; a
dispatcher restarted after longer than ``resolve_timeout`` gives the sources a full timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from alerting_harness import Running
from alerting_receiver import Receiver, alert_doc

from alerting.engine import NOT_ACCEPTED_MS
from alerting.metrics import Metrics
from fleetpulse.waiting import free_port, wait_until
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration
TIMEOUT_S = 3


def config(url: str, resolve_timeout: str = "15m") -> str:
    """A small retry budget (a down receiver dead-letters within about a second) and a
    breaker that never stays open long (so a receiver back up is tried at once)."""
    return f"""
global: {{resolve_timeout: {resolve_timeout}}}
receivers:
  - name: hook
    type: webhook
    url: "{url}"
    secret: s3cret
    timeout: 1s
    retry: {{max_attempts: 3, initial_backoff: 20ms, max_backoff: 50ms, max_age: 1s}}
    circuit_breaker: {{failure_threshold: 100, reset_timeout: 100ms}}
route:
  receiver: hook
  group_by: [group, class]
  group_wait: 20ms
  group_interval: 50ms
  repeat_interval: 1h
"""


def send(producer: Any, topic: str, *docs: dict[str, Any]) -> None:
    for d in docs:
        producer.send(topic, key=d["dedup_key"].encode(), value=orjson.dumps(d))
    producer.flush()


def events(receiver: Receiver, key: str) -> list[str]:
    return [r.body["event_action"] for r in receiver.got("/hook") if r.body["dedup_key"] == key]


@contextmanager
def reasserting(producer: Any, topic: str, doc: dict[str, Any], every_s: float) -> Iterator[None]:
    """Re-send ``doc`` every ``every_s`` while the block runs, as a job's refresh does."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every_s):
            send(producer, topic, doc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(10)


def test_a_trigger_lost_to_an_outage_is_delivered_when_reasserted(
    start: Callable[..., Running], producer: Any, unique_topics: TopicNames
) -> None:
    port = free_port()
    m = Metrics()
    r = start(config(f"http://127.0.0.1:{port}/hook"), metrics=m)
    key = "truck_offline:T1"
    send(producer, unique_topics.alerts, alert_doc())  # the receiver is down
    wait_until(
        lambda: m.value("fleetpulse_alerting_dead_letters_total", receiver="hook") == 1,
        20,
        "the trigger dead-lettered",
    )
    wait_until(
        lambda: r.d.state.open[key]["hook"].last_sent_ms == NOT_ACCEPTED_MS,
        10,
        "the engine told of the dead letter",
    )
    receiver = Receiver(port=port).start()  # back up
    try:
        send(producer, unique_topics.alerts, alert_doc())  # the job's next refresh
        wait_until(lambda: events(receiver, key) == ["trigger"], 20, "the re-asserted trigger")
        wait_until(lambda: r.d.store.accepted("hook", key), 10, "the trigger accepted")
        send(producer, unique_topics.alerts, alert_doc(action="resolve"))
        wait_until(lambda: events(receiver, key) == ["trigger", "resolve"], 20, "the resolve")
        assert receiver.all_problems() == []
        assert r.alive()
    finally:
        receiver.stop()


def test_a_key_not_reasserted_is_resolved_and_a_reasserted_one_stays_open(
    start: Callable[..., Running], producer: Any, receiver: Receiver, unique_topics: TopicNames
) -> None:
    m = Metrics()
    r = start(config(receiver.url("/hook"), f"{TIMEOUT_S}s"), metrics=m)
    t1, t2 = alert_doc(subject="T1"), alert_doc(subject="T2")
    send(producer, unique_topics.alerts, t1, t2)
    wait_until(
        lambda: (
            receiver.keys("/hook")
            >= {("truck_offline:T1", "trigger"), ("truck_offline:T2", "trigger")}
        ),
        20,
        "both triggers",
    )
    with reasserting(producer, unique_topics.alerts, t2, TIMEOUT_S / 6):
        wait_until(
            lambda: events(receiver, "truck_offline:T1") == ["trigger", "resolve"],
            30,
            "T1 resolved by timeout",
        )
        # two more sweeps while T2 keeps being re-asserted
        swept = r.d._swept_ms
        wait_until(lambda: r.d._swept_ms > swept, 10, "a sweep after T1's")
        swept = r.d._swept_ms
        wait_until(lambda: r.d._swept_ms > swept, 10, "a second sweep after T1's")
    assert events(receiver, "truck_offline:T2") == ["trigger"]  # re-asserts are repeats
    [res] = [q.body for q in receiver.got("/hook") if q.body["event_action"] == "resolve"]
    assert res["payload"]["custom_details"]["reason"] == "resolve_timeout"
    assert res["payload"]["summary"].startswith(
        f"Resolved because its source stopped re-asserting it for {TIMEOUT_S}s"
    )
    assert res["payload"]["group"] == "WEST" and res["payload"]["class"] == "truck_offline"
    assert m.value("fleetpulse_alerting_timeout_resolves_total") == 1
    assert receiver.all_problems() == []
    # a later trigger of the timed-out key opens a new incident
    send(producer, unique_topics.alerts, t1)
    wait_until(
        lambda: events(receiver, "truck_offline:T1") == ["trigger", "resolve", "trigger"],
        20,
        "T1 triggered again",
    )
    assert r.alive()


def test_a_restarted_dispatcher_gives_the_sources_a_full_timeout(
    start: Callable[..., Running], producer: Any, receiver: Receiver, unique_topics: TopicNames
) -> None:
    text = config(receiver.url("/hook"), f"{TIMEOUT_S}s")
    t1, t2 = alert_doc(subject="T1"), alert_doc(subject="T2")
    first = start(text)
    send(producer, unique_topics.alerts, t1, t2)
    wait_until(
        lambda: (
            receiver.keys("/hook")
            >= {("truck_offline:T1", "trigger"), ("truck_offline:T2", "trigger")}
        ),
        20,
        "both triggers",
    )
    first.stop()
    time.sleep(TIMEOUT_S + 1)  # down for longer than resolve_timeout
    restarted_at = time.time()
    second = start(text)
    # let a sweep pass before T1 is re-asserted: counting its assertion from before the
    # restart would resolve it there
    wait_until(lambda: second.d._swept_ms > second.d.started_ms, 10, "a sweep after the restart")
    with reasserting(producer, unique_topics.alerts, t1, TIMEOUT_S / 6):
        wait_until(
            lambda: events(receiver, "truck_offline:T2") == ["trigger", "resolve"],
            30,
            "T2 (not re-asserted) resolved",
        )
    [res] = [q for q in receiver.got("/hook") if q.body["event_action"] == "resolve"]
    assert res.at - restarted_at >= TIMEOUT_S - 0.01  # not before a full timeout after the restart
    assert events(receiver, "truck_offline:T1") == ["trigger"]
    assert second.alive()
