"""Issue 29's divergent replay, on real Kafka, Redis, Flink and the alert dispatcher: the delay
job is killed after a wall-clock fallback paged a shipment late and before a checkpoint held it;
restored, it reads the shipment's (early) delivery first and never finds it late. Nothing in
the replay undoes what the first run wrote: the refresh does. Redis converges on the restored
state, and the incident the job no longer re-asserts is closed by the dispatcher's
resolve_timeout."""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import redis

from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import wait_until
from tests.alerting.alerting_receiver import Receiver
from udfs.contract import TopicNames

from .test_delay_kafka import MIN, actions, all_committed, job, produce, scan

pytestmark = pytest.mark.integration
GROUP = "it-delay-divergent"
REFRESH_S = 2  # the jobs' --alert-refresh-s; the dispatcher's resolve_timeout is 3 of them


def dispatcher(tmp_path: Path, kafka: str, topics: TopicNames, hook: str) -> ManagedProcess:
    """`fleetpulse alerts run` delivering every alert to ``hook``."""
    config = tmp_path / "alerts.yaml"
    config.write_text(
        f"""
global: {{resolve_timeout: {3 * REFRESH_S}s}}
receivers:
  - {{name: hook, type: webhook, url: "{hook}", secret: s3cret}}
route: {{receiver: hook, group_wait: 50ms, group_interval: 100ms, repeat_interval: 1h}}
"""
    )
    argv = [sys.executable, "-m", "alerting", "run", "--bootstrap", kafka, "--config", str(config)]
    argv += ["--state-dir", str(tmp_path / "alerting"), "--group-id", f"disp-{topics.alerts}"]
    argv += ["--alerts-topic", topics.alerts, "--dlq-topic", topics.dlq]
    return ManagedProcess("dispatcher", argv, tmp_path / "dispatcher.log")


def events(receiver: Receiver, key: str) -> list[tuple[str, str | None]]:
    """(action, custom_details.reason) of what the receiver got for ``key``."""
    return [
        (r.body["event_action"], r.body["payload"]["custom_details"].get("reason"))
        for r in receiver.got("/hook")
        if r.body["dedup_key"] == key
    ]


def newest_checkpoint(ckpt: Path) -> Path | None:
    done = sorted(ckpt.glob("*/chk-*/_metadata"), key=lambda p: int(p.parent.name[4:]))
    return done[-1].parent if done else None


def test_a_replay_down_another_path_leaves_redis_as_the_restored_state_says(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    receiver = Receiver().start()
    disp = dispatcher(tmp_path, kafka_bootstrap, unique_topics, receiver.url("/hook")).start()
    try:
        chosen, promise = first_run_killed_after_the_page(
            kafka_bootstrap, redis_url, redis_client, unique_topics, tmp_path
        )
        # The correction: delivered before its promise. The restored job reads it first.
        delivery = scan("QUIET", 2, "DELIVERED", promise - MIN)
        produce(kafka_bootstrap, unique_topics.scans, [delivery])
        second = job(
            tmp_path / "second.log",
            kafka_bootstrap,
            redis_url,
            unique_topics,
            *job_args(tmp_path),
            "--restore",
            str(chosen),
            # Event time now follows the input alone: the delivery decides, not the wall clock.
            "--fallback-grace-ms",
            "600000",
        ).start()
        try:
            wait_until(
                lambda: all_committed(kafka_bootstrap, unique_topics.scans, GROUP),
                180,
                "the restored job past the delivery",
            )
            wait_until(
                lambda: redis_client.zscore("delays", "shipment:QUIET") is None,
                60,
                "the member the restored state does not hold removed",
            )
            assert redis_client.zcard("{delays}:asserted") == 0
            west = {k.decode(): float(v) for k, v in redis_client.hgetall("region:WEST").items()}
            assert west.get("total_shipments") == 1.0 and not west.get("total_delay_hours")
            # The replay never resolves what it never raised: the first run's trigger (and its
            # re-assertions before the kill) stand alone on the topic ...
            quiet = [a for a in actions(kafka_bootstrap, unique_topics.alerts) if "QUIET" in a[0]]
            assert quiet and set(quiet) == {("shipment_late:QUIET", "trigger", "info")}
            # ... and the dispatcher closes the incident no one re-asserts any more.
            wait_until(
                lambda: (
                    events(receiver, "shipment_late:QUIET")[-1:] == [("resolve", "resolve_timeout")]
                ),
                60,
                "the incident resolved by the dispatcher's resolve_timeout",
            )
            time.sleep(3 * REFRESH_S)  # a while longer, the job running: nothing re-opens it
            assert events(receiver, "shipment_late:QUIET") == [
                ("trigger", None),
                ("resolve", "resolve_timeout"),
            ]
            assert receiver.all_problems() == []
        finally:
            second.stop()
    finally:
        disp.stop()
        receiver.stop()


def job_args(tmp_path: Path) -> tuple[str, ...]:
    return (
        "--group-id",
        GROUP,
        "--no-at-risk",
        "--idle-timeout-ms",
        "5000",
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        "--checkpoint-interval-ms",
        "1000",
        # The watermark's lag delays the fallback's page: a second is all this input needs.
        "--out-of-orderness-ms",
        "1000",
        "--alert-refresh-s",
        str(REFRESH_S),
    )


def first_run_killed_after_the_page(
    kafka: str, redis_url: str, redis_client: redis.Redis, topics: TopicNames, tmp_path: Path
) -> tuple[Path, int]:
    """Run the job until the stall fallback pages QUIET late, and SIGKILL it; return a
    checkpoint completed before the page (kept aside) and QUIET's promise."""
    ckpt = tmp_path / "checkpoints"
    first = job(
        tmp_path / "first.log",
        kafka,
        redis_url,
        topics,
        *job_args(tmp_path),
        "--fallback-grace-ms",
        "3000",
    ).start()
    try:
        wait_until(lambda: newest_checkpoint(ckpt), 180, "the first job running (a checkpoint)")
        now = int(time.time() * 1000)
        promise = now + 25_000  # wall clock: only the fallback can make it late, after 25 s
        produce(
            kafka,
            topics.scans,
            [scan("QUIET", 1, "PICKED_UP", now - 5 * MIN, promised_by=promise)]
            + [scan(f"TICK{i}", 1, "ARRIVED_HUB", now - 1000) for i in range(8)],
        )
        # A checkpoint holding the pickup, completed while the shipment was not yet late.
        wait_until(
            lambda: all_committed(kafka, topics.scans, GROUP),
            120,
            "a checkpoint holding every scan",
        )
        newest = newest_checkpoint(ckpt)
        assert newest is not None and int(time.time() * 1000) < promise, "too slow to diverge"
        # Kept aside: the job retains only its 3 newest (this small state is all in _metadata).
        chosen = Path(shutil.copytree(newest, tmp_path / "kept" / newest.name))
        wait_until(
            lambda: redis_client.zscore("delays", "shipment:QUIET") == 1.0,
            120,
            "the fallback's late score",
        )
        assert ("shipment_late:QUIET", "trigger", "info") in actions(kafka, topics.alerts)
        first.kill()  # the checkpoints after the chosen one are not restored
        assert first.exit_code() == -signal.SIGKILL
    finally:
        first.stop()
    return chosen, promise
