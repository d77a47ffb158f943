"""The dispatcher with real Kafka and a real local HTTP receiver: end to end, dead-letter topic,
metrics and health, inhibition, silences from the CLI, restart with open alerts, and a SIGKILL
in the middle of delivery (nothing lost)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from alerting_harness import Running, config_text, dlq_records
from alerting_receiver import Receiver, alert_doc
from click.testing import CliRunner

from alerting.cli import alerts
from alerting.metrics import Metrics
from fleetpulse.waiting import Timeout, free_port, wait_until
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def send(producer: Any, topic: str, *docs: dict[str, Any] | bytes) -> None:
    for d in docs:
        value = d if isinstance(d, bytes) else orjson.dumps(d)
        key = b"bad" if isinstance(d, bytes) else d["dedup_key"].encode()
        producer.send(topic, key=key, value=value)
    producer.flush()


def test_end_to_end_with_dlq_inhibition_metrics_and_health(
    start: Callable[..., Running],
    producer: Any,
    receiver: Receiver,
    unique_topics: TopicNames,
    kafka_bootstrap: str,
) -> None:
    port = free_port()
    m = Metrics()
    r = start(config_text(receiver), metrics_port=port, metrics=m)
    send(
        producer,
        unique_topics.alerts,
        alert_doc(subject="T1", severity="warning"),
        b"{definitely not json",
        alert_doc(cls="truck_offline", subject="T5"),
        alert_doc(cls="truck_stopped_unplanned", subject="T5"),
        {"event_action": "trigger", "dedup_key": "x:1"},
    )
    wait_until(
        lambda: (
            receiver.keys("/hook")
            >= {("truck_offline:T1", "trigger"), ("truck_offline:T5", "trigger")}
        ),
        20,
        "first deliveries",
    )
    send(producer, unique_topics.alerts, alert_doc(subject="T1", severity="critical"))
    wait_until(
        lambda: any(q.body["payload"]["severity"] == "critical" for q in receiver.got("/hook")),
        10,
        "escalation",
    )
    send(
        producer,
        unique_topics.alerts,
        alert_doc(subject="T1", action="resolve"),
        alert_doc(subject="T1", action="resolve"),
    )
    wait_until(lambda: ("truck_offline:T1", "resolve") in receiver.keys("/hook"), 10, "resolve")

    dead = dlq_records(kafka_bootstrap, unique_topics.dlq, 2)
    assert sorted(d["reason"] for d in dead) == ["MALFORMED_JSON", "MISSING_FIELD"]
    assert all(d["source_topic"] == unique_topics.alerts for d in dead)
    wait_until(
        lambda: (
            m.value("fleetpulse_alerting_suppressed_total", receiver="hook", reason="inhibited")
            == 1
        ),
        5,
        "inhibition counted",
    )
    assert "truck_stopped_unplanned:T5" not in {k for k, _ in receiver.keys("/hook")}
    assert receiver.all_problems() == []
    actions = [
        q.body["event_action"]
        for q in receiver.got("/hook")
        if q.body["dedup_key"] == "truck_offline:T1"
    ]
    assert actions == ["trigger", "trigger", "resolve"]  # second resolve not sent

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'fleetpulse_alerting_deliveries_total{outcome="delivered",receiver="hook"} 4.0' in text
    assert "fleetpulse_alerting_delivery_latency_seconds_bucket" in text
    assert 'fleetpulse_alerting_circuit_state{receiver="hook"} 0.0' in text
    health = httpx.get(f"http://127.0.0.1:{port}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    r.stop()


def test_open_alerts_survive_restart_and_cli_silences_apply(
    start: Callable[..., Running],
    producer: Any,
    receiver: Receiver,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    text = config_text(receiver)
    r = start(text)
    send(producer, unique_topics.alerts, alert_doc(subject="T1"))
    wait_until(lambda: receiver.keys("/hook"), 20, "trigger delivered")
    r.stop()

    m = Metrics()
    r = start(text, metrics=m)
    # same trigger again: suppressed (state survived); T2 was never triggered: no resolve
    send(
        producer,
        unique_topics.alerts,
        alert_doc(subject="T1"),
        alert_doc(subject="T2", action="resolve"),
    )
    wait_until(
        lambda: (
            m.value("fleetpulse_alerting_suppressed_total", receiver="hook", reason="repeat") == 1
            and m.value("fleetpulse_alerting_suppressed_total", receiver="hook", reason="not_open")
            == 1
        ),
        20,
        "repeat + not_open suppressions",
    )
    runner = CliRunner()
    res = runner.invoke(
        alerts,
        [
            "silence",
            "add",
            "class=truck_offline",
            "group=SOUTH",
            "--duration",
            "10m",
            "--state-dir",
            str(tmp_path / "state"),
            "--comment",
            "maintenance",
        ],
    )
    assert res.exit_code == 0, res.output
    sid = res.output.strip()
    res = runner.invoke(alerts, ["silence", "list", "--state-dir", str(tmp_path / "state")])
    assert sid in res.output and "active" in res.output
    wait_until(lambda: r.d.engine.silences, 5, "silence loaded by the running dispatcher")
    send(
        producer,
        unique_topics.alerts,
        alert_doc(subject="T3", group="SOUTH"),
        alert_doc(subject="T1", action="resolve"),
    )
    wait_until(lambda: ("truck_offline:T1", "resolve") in receiver.keys("/hook"), 20, "resolve")
    wait_until(
        lambda: (
            m.value("fleetpulse_alerting_suppressed_total", receiver="hook", reason="silenced") == 1
        ),
        5,
        "silenced",
    )
    assert [q.body["event_action"] for q in receiver.got("/hook")] == ["trigger", "resolve"]
    res = runner.invoke(alerts, ["silence", "remove", sid, "--state-dir", str(tmp_path / "state")])
    assert res.exit_code == 0, res.output
    r.stop()


def test_sigkill_during_delivery_loses_nothing(
    producer: Any,
    receiver: Receiver,
    unique_topics: TopicNames,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    receiver.slow_s = 0.01
    receiver.script("/hook", "slow")  # every answer takes 10 ms
    cfg = tmp_path / "alerts.yaml"
    cfg.write_text(
        config_text(receiver).replace("timeout: 1s", "timeout: 1s\n    max_in_flight: 2")
    )
    n = 150
    send(producer, unique_topics.alerts, *[alert_doc(subject=f"K{i}") for i in range(n)])
    group = f"kill-{uuid.uuid4().hex[:6]}"

    log = (tmp_path / "dispatcher.log").open("ab")

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alerting",
                "run",
                "--bootstrap",
                kafka_bootstrap,
                "--config",
                str(cfg),
                "--state-dir",
                str(tmp_path / "state"),
                "--group-id",
                group,
                "--instance-id",
                "kill-test",
                "--alerts-topic",
                unique_topics.alerts,
                "--dlq-topic",
                unique_topics.dlq,
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=log,
        )

    def delivered() -> set[str]:
        return {k for k, _ in receiver.keys("/hook")}

    def wait_or_show_log(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        try:
            wait_until(predicate, timeout_s, what)
        except Timeout:
            missing = sorted({f"truck_offline:K{i}" for i in range(n)} - delivered())
            log.flush()
            pytest.fail(
                f"timed out waiting for {what}: {len(missing)} alerts not delivered, "
                f"e.g. {missing[:5]}; process alive: {proc.poll() is None}; "
                "dispatcher log:\n" + (tmp_path / "dispatcher.log").read_text()[-3000:]
            )

    proc = spawn()
    try:
        wait_or_show_log(lambda: len(receiver.got("/hook")) >= 20, 30, "some deliveries")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert len(delivered()) < n, "killed too late to test anything"
        proc = spawn()
        wait_or_show_log(
            lambda: len(delivered()) == n, 60, "every alert delivered after the restart"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0, (tmp_path / "dispatcher.log").read_text()[-3000:]
    assert receiver.all_problems() == []


def test_bad_config_makes_run_exit_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers: []\nroute: {receiver: x}\n")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "alerting",
            "run",
            "--config",
            str(bad),
            "--state-dir",
            str(tmp_path / "s"),
        ],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert res.returncode != 0
    assert f"{bad}: receivers: List should have at least 1 item" in res.stderr.decode()
    res2 = CliRunner().invoke(alerts, ["check-config", str(bad)])
    assert res2.exit_code == 1 and "receivers" in res2.output
