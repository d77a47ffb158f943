"""Both jobs on a simulated fleet, scored against the simulator's ground truth: every expected
alert raised, none unexpected, every malformed record dead-lettered with its reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from jobs import job_process, read_topic

from fleetpulse.waiting import Timeout, wait_until
from simulator.truth import GroundTruth, Score, score_alerts, score_dead_letters
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration


def test_jobs_match_the_ground_truth_of_a_simulated_fleet(
    kafka_bootstrap: str, redis_url: str, unique_topics: TopicNames, tmp_path: Path
) -> None:
    truth_file = tmp_path / "truth.json"
    sim = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "simulate",
            "--trucks",
            "8",
            "--hours",
            "30",
            "--seed",
            "3",
            "--fast",
            "--no-progress",
            "--truth",
            str(truth_file),
            "--bootstrap",
            kafka_bootstrap,
            "--gps-topic",
            unique_topics.gps,
            "--scans-topic",
            unique_topics.scans,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sim.returncode == 0, sim.stderr[-3000:]
    truth = GroundTruth.from_json(truth_file.read_bytes())
    required = {a.alert_class for a in truth.alerts if a.required}
    assert {"truck_offline", "truck_stopped_unplanned", "shipment_late"} <= required

    base = redis_url.rsplit("/", 1)[0]
    jobs = [
        job_process(
            module,
            tmp_path / f"{module}.log",
            kafka_bootstrap,
            f"{base}/5",
            unique_topics,
            "--group-id",
            f"sim-{module}",
        )
        for module in ("flink_jobs.tracking.job", "flink_jobs.delay.job")
    ]
    for job in jobs:
        job.start()
    topics = {"gps": unique_topics.gps, "scans": unique_topics.scans}
    last: dict[str, Score] = {}
    try:

        def scored() -> bool:
            for job in jobs:
                if not job.alive():
                    raise AssertionError(f"{job.name} died:\n{job.log_tail(40)}")
            last["alerts"] = score_alerts(truth, read_topic(kafka_bootstrap, unique_topics.alerts))
            last["dlq"] = score_dead_letters(
                truth, read_topic(kafka_bootstrap, unique_topics.dlq), topics
            )
            return last["alerts"].perfect and last["dlq"].perfect

        try:
            wait_until(scored, 300, "the jobs' alerts to match the ground truth", interval_s=3)
        except Timeout:
            report = "\n".join(f"[{k}]\n{v.report()}" for k, v in last.items())
            raise AssertionError(f"jobs disagree with the ground truth:\n{report}") from None
    finally:
        for job in jobs:
            job.stop()
    assert last["alerts"].recall == 1.0 and last["alerts"].precision == 1.0
