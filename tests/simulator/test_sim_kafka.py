"""The CLI against a real broker: simulate to fresh topics, replay a file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fleetpulse.waiting import wait_until
from simulator.cli import replay, simulate
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration


def count(bootstrap: str, topic: str, want: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "sim-test"})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]

        def total() -> int | None:
            n = sum(c.get_watermark_offsets(tp, timeout=5)[1] for tp in parts)
            return n if n >= want else None

        return wait_until(total, 30, f"{want} records in {topic}")
    finally:
        c.close()


def test_simulate_then_replay(
    kafka_bootstrap: str, unique_topics: TopicNames, tmp_path: Path
) -> None:
    runner = CliRunner()
    out, truth = tmp_path / "run.jsonl", tmp_path / "truth.json"
    args = ["--trucks", "10", "--hours", "3", "--seed", "9", "--start-ms", "1764000000000"]
    res = runner.invoke(simulate, [*args, "--out", str(out), "--truth", str(truth)])
    assert res.exit_code == 0, res.output
    lines = out.read_bytes().splitlines()
    n_gps = sum(1 for x in lines if orjson.loads(x)["topic"] == "gps")
    assert orjson.loads(truth.read_bytes())["version"] == 1
    topics = [
        "--bootstrap",
        kafka_bootstrap,
        "--gps-topic",
        unique_topics.gps,
        "--scans-topic",
        unique_topics.scans,
    ]
    res = runner.invoke(simulate, [*args, *topics, "--fast"])
    assert res.exit_code == 0, res.output
    assert count(kafka_bootstrap, unique_topics.gps, n_gps) == n_gps
    res = runner.invoke(replay, [str(out), *topics, "--fast"])
    assert res.exit_code == 0, res.output
    assert count(kafka_bootstrap, unique_topics.gps, 2 * n_gps) == 2 * n_gps
    assert count(kafka_bootstrap, unique_topics.scans, 1) == 2 * (len(lines) - n_gps)
