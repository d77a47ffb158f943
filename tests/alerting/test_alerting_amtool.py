"""Alertmanager's own CLI, ``amtool`` (Debian package ``prometheus-alertmanager``; ``./dev.sh
setup`` installs it), against the running dispatcher's API on real Kafka (issue 30): it lists
the firing alerts, adds a silence that mutes one, queries and expires it. And a second
dispatcher on the same state directory is refused while the CLI keeps working."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from alerting_harness import Running, config_text
from alerting_receiver import Receiver, alert_doc
from click.testing import CliRunner

from alerting import AlertingError
from alerting.cli import alerts
from alerting.config import parse_config
from alerting.service import Dispatcher
from fleetpulse.waiting import free_port, wait_until
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
AMTOOL = shutil.which("amtool")


def send(producer: Any, topic: str, *docs: dict[str, Any]) -> None:
    for d in docs:
        producer.send(topic, key=d["dedup_key"].encode(), value=orjson.dumps(d))
    producer.flush()


def amtool(port: int, home: Path, *args: str) -> str:
    out = subprocess.run(
        [AMTOOL or "amtool", "--alertmanager.url", f"http://127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(home)},  # no amtool config of the user's
    )
    assert out.returncode == 0, f"amtool {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


@pytest.mark.skipif(
    AMTOOL is None,
    reason="amtool not installed (Debian package prometheus-alertmanager; ./dev.sh setup "
    "installs it)",
)
def test_amtool_lists_alerts_and_adds_queries_and_expires_silences(
    start: Callable[..., Running],
    producer: Any,
    receiver: Receiver,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    port = free_port()
    r = start(config_text(receiver), api_port=port)
    send(
        producer,
        unique_topics.alerts,
        alert_doc(cls="truck_offline", subject="T5"),
        alert_doc(cls="truck_stopped_unplanned", subject="T5"),
        alert_doc(cls="shipment_late", subject="S1", group="SOUTH"),
    )
    wait_until(
        lambda: {k for k, _ in receiver.keys("/hook")} == {"truck_offline:T5", "shipment_late:S1"},
        30,
        "two triggers delivered (the stopped truck is inhibited)",
    )

    listed = orjson.loads(amtool(port, tmp_path, "-o", "json", "alert", "query"))
    assert {a["labels"]["dedup_key"] for a in listed} == {"truck_offline:T5", "shipment_late:S1"}
    assert {a["receivers"][0]["name"] for a in listed} == {"hook"}
    simple = amtool(port, tmp_path, "alert", "query", "shipment_late")  # bare word: alertname
    assert "shipment_late S1" in simple and "truck_offline" not in simple
    inhibited = orjson.loads(amtool(port, tmp_path, "-o", "json", "alert", "query", "-i"))
    assert [a["labels"]["dedup_key"] for a in inhibited] == ["truck_stopped_unplanned:T5"]

    sid = amtool(
        port,
        tmp_path,
        "silence",
        "add",
        'class=~"shipment_.*"',
        'group!="WEST"',
        "--comment",
        "hub maintenance",
        "--author",
        "sre",
        "--duration",
        "2h",
    ).strip()
    assert len(sid) == 36, sid
    (s,) = orjson.loads(amtool(port, tmp_path, "-o", "json", "silence", "query"))
    assert s["id"] == sid and s["comment"] == "hub maintenance" and s["createdBy"] == "sre"
    assert {(m["name"], m["isRegex"], m.get("isEqual", True)) for m in s["matchers"]} == {
        ("class", True, True),
        ("group", False, False),
    }
    assert amtool(port, tmp_path, "silence", "query", "-q", 'class=~"shipment.*"').split() == [sid]
    assert amtool(port, tmp_path, "silence", "query", "-q", "class=truck_offline").split() == []
    silenced = orjson.loads(amtool(port, tmp_path, "-o", "json", "alert", "query", "-s"))
    assert [(a["labels"]["dedup_key"], a["status"]["silencedBy"]) for a in silenced] == [
        ("shipment_late:S1", [sid])
    ]
    # the running dispatcher applies it: a re-sent trigger is muted as silenced
    wait_until(lambda: [x.id for x in r.d.engine.silences] == [sid], 10, "silence loaded")
    assert r.d.engine.silenced({"class": "shipment_late", "group": "SOUTH"}, r.d.clock())

    amtool(port, tmp_path, "silence", "expire", sid)
    assert amtool(port, tmp_path, "silence", "query", "-q").split() == []
    assert amtool(port, tmp_path, "silence", "query", "-q", "--expired").split() == [sid]
    wait_until(
        lambda: (
            r.d.engine.silenced({"class": "shipment_late", "group": "SOUTH"}, r.d.clock()) is None
        ),
        10,
        "expired silence applied",
    )
    res = CliRunner().invoke(
        alerts, ["silence", "list", "--all", "--state-dir", r.d.settings.state_dir]
    )
    assert f"{sid}\texpired" in res.output
    assert r.alive()


def test_a_second_dispatcher_on_the_same_state_is_refused(
    start: Callable[..., Running],
    receiver: Receiver,
    unique_topics: TopicNames,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    text = config_text(receiver)
    r = start(text)
    wait_until(lambda: r.d.instance_lock._fd is not None, 10, "first dispatcher holds the lock")
    state = r.d.settings.state_dir

    second = Dispatcher(parse_config(text, "test.yaml"), r.d.settings)
    with pytest.raises(AlertingError, match="another dispatcher is running on state directory"):
        second.run()

    cfg = tmp_path / "alerts.yaml"
    cfg.write_text(text)
    out = subprocess.run(
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
            state,
            "--alerts-topic",
            unique_topics.alerts,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    assert f"another dispatcher is running on state directory {state} (pid {os.getpid()}" in (
        out.stderr
    )
    # commands that only read or edit the state keep working beside the running dispatcher
    runner = CliRunner()
    res = runner.invoke(alerts, ["silence", "add", "class=x", "--state-dir", state])
    assert res.exit_code == 0, res.output
    assert runner.invoke(alerts, ["query", "--state-dir", state]).exit_code == 0
    assert r.alive()
    r.stop()
    Dispatcher(parse_config(text, "test.yaml"), r.d.settings).instance_lock.acquire().release()
