"""Helpers for integration tests: run a job module as its own process, read topics."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.samples import Sample

from fleetpulse.services.flink import flink_env
from fleetpulse.services.process import ManagedProcess
from udfs.contract import TopicNames


def flink_conf_dir(where: Path, settings: dict[str, object]) -> Path:
    """A Flink configuration directory like a cluster's: the wheel's files, with ``settings``
    in its config.yaml (for an embedded job: ``FLINK_CONF_DIR``)."""
    import shutil

    import yaml

    from fleetpulse.services.flink import pyflink_home

    shipped = pyflink_home() / "conf"
    where.mkdir(parents=True, exist_ok=True)
    for f in shipped.iterdir():
        if f.name != "config.yaml":
            shutil.copy(f, where / f.name)
    java_opts = yaml.safe_load((shipped / "config.yaml").read_text())["env"]["java"]["opts"]["all"]
    (where / "config.yaml").write_text(yaml.safe_dump({"env.java.opts.all": java_opts, **settings}))
    return where


def job_args(module: str, kafka: str, redis_url: str, topics: TopicNames, *extra: str) -> list[str]:
    """A job's flags for the test services and topics (each job refuses the other's)."""
    return [
        "--bootstrap",
        kafka,
        "--redis-url",
        redis_url,
        "--gps-topic",
        topics.gps,
        "--alerts-topic",
        topics.alerts,
        "--dlq-topic",
        topics.dlq,
        *(
            ["--scans-topic", topics.scans, "--redis-flush-ms", "50"]
            if module == "flink_jobs.delay.job"
            else ["--geofence-topic", topics.geofence_events]
        ),
        *extra,
    ]


def job_process(
    module: str,
    log: Path,
    kafka: str,
    redis_url: str,
    topics: TopicNames,
    *extra: str,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    argv = [sys.executable, "-m", module, *job_args(module, kafka, redis_url, topics, *extra)]
    return ManagedProcess(module, argv, log, env={**flink_env(), **(env or {})})


def produce(kafka: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def read_topic(kafka: str, topic: str, timeout_ms: int = 2000) -> list[dict]:  # type: ignore[type-arg]
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=timeout_ms,
    )
    try:
        return [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def job_samples(port: int) -> list[Sample]:
    """A job's Prometheus endpoint: every sample, with its labels."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    return [s for family in text_string_to_metric_families(text.decode()) for s in family.samples]


def job_metrics(port: int) -> dict[str, float]:
    """A job's Prometheus endpoint, samples summed by name (over subtasks and labels)."""
    sums: dict[str, float] = {}
    for sample in job_samples(port):
        sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def metric(sums: dict[str, float], name: str) -> float:
    """A fleetpulse metric by its short name (Flink prefixes scope and operator)."""
    return sum(
        v for k, v in sums.items() if k.removesuffix("_total").endswith(f"fleetpulse_{name}")
    )


def labelled(samples: list[Sample], name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of the samples named ``name`` (exactly, as scraped) whose labels include
    ``labels`` (over subtasks and the labels not given)."""
    wanted = (labels or {}).items()
    return sum(s.value for s in samples if s.name == name and wanted <= s.labels.items())


def label_sets(samples: list[Sample], name: str) -> list[dict[str, str]]:
    """The label sets of the samples named ``name`` (for messages)."""
    return [s.labels for s in samples if s.name == name]


class ScrapeLoop:
    """Scrapes a job's Prometheus endpoint over and over on a thread, as a monitoring system
    would through whatever the job goes through (failovers included), keeping the last
    successful scrape's samples."""

    def __init__(self, port: int, interval_s: float = 0.05) -> None:
        self.port = port
        self.interval_s = interval_s
        self.scrapes = 0
        self.last: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scrape-loop", daemon=True)

    def __enter__(self) -> ScrapeLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.last = job_samples(self.port)
            except OSError:
                continue  # the endpoint is not up yet
            self.scrapes += 1
