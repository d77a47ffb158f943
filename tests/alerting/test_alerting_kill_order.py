"""Per-key order through dispatcher crashes (issue 29), with real Kafka and a real HTTP
receiver: trigger -> resolve pairs while ``python -m alerting run`` is SIGKILLed three times.
At the receiver, no key gets a trigger after its resolve and every key ends resolved."""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from alerting_harness import config_text, spawn_dispatcher
from alerting_receiver import Receiver, alert_doc

from fleetpulse.waiting import Timeout, wait_until
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
N = 200


def send(producer: Any, topic: str, docs: list[dict[str, Any]]) -> None:
    for d in docs:
        producer.send(topic, key=d["dedup_key"].encode(), value=orjson.dumps(d))
    producer.flush()


def history(receiver: Receiver) -> dict[str, list[str]]:
    """Accepted events per key, in arrival order (a request cut off by a kill has no body)."""
    out: dict[str, list[str]] = {}
    for r in receiver.got("/hook"):
        if isinstance(r.body, dict):
            out.setdefault(r.body["dedup_key"], []).append(r.body["event_action"])
    return out


def test_no_trigger_after_its_resolve_through_three_sigkills(
    producer: Any,
    receiver: Receiver,
    unique_topics: TopicNames,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    receiver.slow_s = 0.005
    receiver.script("/hook", "slow")
    cfg = tmp_path / "alerts.yaml"
    cfg.write_text(
        config_text(receiver).replace("timeout: 1s", "timeout: 1s\n    max_in_flight: 4")
    )
    group = f"order-{uuid.uuid4().hex[:6]}"
    log_path = tmp_path / "dispatcher.log"
    log = log_path.open("ab")
    keys = [f"K{i}" for i in range(N)]

    def spawn() -> subprocess.Popen[bytes]:
        return spawn_dispatcher(
            ROOT, kafka_bootstrap, cfg, tmp_path / "state", group, unique_topics, log
        )

    def count(action: str) -> int:
        return sum(action in acts for acts in history(receiver).values())

    def wait(predicate: Any, what: str) -> None:
        try:
            wait_until(predicate, 60, what)
        except Timeout:
            log.flush()
            pytest.fail(f"timed out waiting for {what}; log:\n{log_path.read_text()[-3000:]}")

    def kill_and_restart(p: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        return spawn()

    proc = spawn()
    try:
        send(producer, unique_topics.alerts, [alert_doc(subject=k) for k in keys])
        wait(lambda: count("trigger") >= 30, "some triggers")
        proc = kill_and_restart(proc)
        # every trigger reached the receiver before its resolve is produced (a resolve read in
        # the same group window as its trigger would collapse the pair to nothing)
        wait(lambda: count("trigger") == N, "every trigger")
        send(producer, unique_topics.alerts, [alert_doc(subject=k, action="resolve") for k in keys])
        wait(lambda: count("resolve") >= 30, "some resolves")
        proc = kill_and_restart(proc)
        wait(lambda: count("resolve") >= 120, "more resolves")
        proc = kill_and_restart(proc)
        wait(lambda: count("resolve") == N, "every resolve")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    h = history(receiver)
    assert sorted(h) == sorted(f"truck_offline:{k}" for k in keys)
    late = {k: acts for k, acts in h.items() if "trigger" in acts[acts.index("resolve") :]}
    assert late == {}, f"triggers sent after their resolve: {list(late.items())[:5]}"
    assert all(acts[-1] == "resolve" for acts in h.values())
    dups = sum(len(acts) for acts in h.values()) - 2 * N
    print(f"{N} pairs, 3 SIGKILLs: {dups} duplicate deliveries")
    assert receiver.all_problems() == []
