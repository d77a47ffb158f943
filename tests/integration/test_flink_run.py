"""`flink run -py` really works: the tracking job submitted to a standalone cluster from the
apache-flink wheel runs with the cluster's configuration, writes its output, and is cancelled
through the REST API."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import redis
from jobs import job_args, produce

from fleetpulse.services.flink import cancel, rest_get, submit
from fleetpulse.services.flink_cluster import StandaloneCluster
from fleetpulse.waiting import free_port, wait_until
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration


def test_tracking_job_submitted_with_flink_run(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    # The cluster's own defaults for its jobs, none of which the job's flags below set.
    cluster = StandaloneCluster(
        tmp_path / "flink",
        rest_port=free_port(),
        rpc_port=free_port(),
        extra_config={
            "parallelism.default": 2,
            "execution.checkpointing.interval": "7 s",
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": 5,
            "restart-strategy.fixed-delay.delay": "3 s",
        },
    )
    cluster.start()
    try:
        args = job_args(
            "flink_jobs.tracking.job",
            kafka_bootstrap,
            redis_url,
            unique_topics,
            "--group-id",
            "it-flink-run",
            "--bundle-shards",
            "4",
        )
        # the Redis URL (a password in production) reaches the job's driver in its
        # environment, as `up --flink-url` passes it, never in the argv of `flink run`
        at = args.index("--redis-url")
        del args[at : at + 2]
        job_id = submit(
            cluster.rest_url,
            "flink_jobs.tracking.job",
            args,
            conf_dir=cluster.conf_dir,
            env={"FLEETPULSE_REDIS_URL": redis_url},
        )
        wait_until(
            lambda: rest_get(cluster.rest_url, f"/jobs/{job_id}")["state"] == "RUNNING",
            120,
            "the submitted job to be RUNNING",
        )
        vertices = rest_get(cluster.rest_url, f"/jobs/{job_id}")["vertices"]
        wait_until(
            lambda: all(
                v["status"] == "RUNNING"
                for v in rest_get(cluster.rest_url, f"/jobs/{job_id}")["vertices"]
            ),
            120,
            "every task RUNNING",
        )
        assert any("truck-state" in v["name"] for v in vertices)
        # The operator jar reached the cluster through pipeline.jars.
        assert any("bundle-by-shard" in v["name"] for v in vertices)
        # The cluster's configuration won where the job's flags said nothing.
        assert {v["parallelism"] for v in vertices} == {2}
        checkpoints = rest_get(cluster.rest_url, f"/jobs/{job_id}/checkpoints/config")
        assert checkpoints["interval"] == 7000
        job_config = {
            e["key"]: e["value"]
            for e in rest_get(cluster.rest_url, f"/jobs/{job_id}/jobmanager/config")
        }
        assert job_config.get("restart-strategy.fixed-delay.attempts") == "5", job_config
        assert job_config.get("python.execution-mode") == "thread"  # the job's own requirement

        ts = int(time.time() * 1000) - 60_000
        produce(
            kafka_bootstrap,
            unique_topics.gps,
            [
                (
                    b"TR1",
                    orjson.dumps(
                        {"truck_id": "TR1", "ts": ts, "lat": 39.74, "lng": -104.99, "speed_kph": 80}
                    ),
                )
            ],
        )
        wait_until(
            lambda: redis_client.hget("truck:TR1", "ts_ms") == str(ts).encode(),
            120,
            "the submitted job's position in Redis",
        )
        assert redis_client.hget("truck:TR1", "region") == b"WEST"

        cancel(cluster.rest_url, job_id)
        wait_until(
            lambda: rest_get(cluster.rest_url, f"/jobs/{job_id}")["state"] == "CANCELED",
            60,
            "the job to be cancelled",
        )
    finally:
        cluster.stop()
