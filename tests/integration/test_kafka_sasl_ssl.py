"""Every Kafka client through a SASL_SSL listener with SCRAM-SHA-512, given only the user's
Kafka properties (one .properties file, certificates generated here): the simulator produces,
the tracking job reads and writes Redis and its alerts, the dispatcher consumes the alerts and
the gateway's alert reader joins the topic (README, "Production")."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs import job_process, job_samples

from bench.tls_certs import write_certificates
from fleetpulse.services.kafka import KafkaBroker, SaslSslListener, create_topics
from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import free_port, wait_until
from udfs.contract import TopicNames, contract_topics
from udfs.kafka_properties import read_kafka_properties

pytestmark = pytest.mark.integration

USER = "fleet"
FLEETPULSE = Path(sys.executable).parent / "fleetpulse"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """A broker whose SASL_SSL listener knows one SCRAM user; yields its address, the client
    properties file that reaches it and the user's password."""
    work = tmp_path_factory.mktemp("sasl-ssl")
    password = secrets.token_urlsafe(12)
    store_password = secrets.token_urlsafe(12)
    ca_pem, keystore = write_certificates(work, store_password)
    listener = SaslSslListener(free_port(), keystore, store_password, {USER: password})
    broker = KafkaBroker(
        work / "kafka", port=free_port(), controller_port=free_port(), secure=listener
    )
    proc = broker.start(work / "kafka.log")
    props = work / "client.properties"
    props.write_text(
        "# what an operator would write for a SASL_SSL/SCRAM cluster\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        f"sasl.username={USER}\n"
        f"sasl.password={password}\n"
        f"ssl.truststore.location={ca_pem}\n"
    )
    try:
        yield broker.secure_bootstrap, props, password
    finally:
        proc.stop()


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def records_read(port: int) -> float:
    """Records the dispatcher has read from its alerts topic (its metrics endpoint)."""
    return sum(s.value for s in job_samples(port) if s.name == "fleetpulse_alerting_records_total")


def gateway_alerts_ready(port: int) -> bool:
    """The gateway's /healthz says its alert reader has the topic's end offsets (it answers
    503 until then, which urlopen raises)."""
    health = get_json(f"http://127.0.0.1:{port}/healthz")
    return isinstance(health, dict) and health.get("alerts") is True


def test_every_client_through_sasl_ssl_and_scram(
    secure_kafka: tuple[str, Path, str], redis_url: str, tmp_path: Path
) -> None:
    bootstrap, props_file, password = secure_kafka
    props = read_kafka_properties((), str(props_file))
    suffix = uuid.uuid4().hex[:8]
    topics = TopicNames(
        gps=f"fleet.gps.{suffix}",
        scans=f"fleet.scans.{suffix}",
        alerts=f"fleet.alerts.{suffix}",
        geofence_events=f"fleet.geofence-events.{suffix}",
        dlq=f"fleet.dlq.{suffix}",
    )
    create_topics(bootstrap, contract_topics(topics), props)  # the admin client (kafka-python)
    env = {"FLEETPULSE_KAFKA_PROPERTIES_FILE": str(props_file)}

    # the gateway's alert reader (kafka-python), ready once it has the topic's end offsets
    gw_port = free_port()
    gateway = ManagedProcess(
        "gateway",
        [
            sys.executable,
            "-m",
            "ws_gateway",
            "run",
            "--redis-url",
            redis_url,
            "--bootstrap",
            bootstrap,
            "--alerts-topic",
            topics.alerts,
            "--port",
            str(gw_port),
            "--no-auth",
            "--kafka-properties-file",
            str(props_file),
        ],
        tmp_path / "gateway.log",
    ).start()
    # the dispatcher (confluent-kafka), properties from the environment
    metrics_port = free_port()
    dispatcher = ManagedProcess(
        "dispatcher",
        [
            sys.executable,
            "-m",
            "alerting",
            "run",
            "--bootstrap",
            bootstrap,
            "--state-dir",
            str(tmp_path / "alerting"),
            "--alerts-topic",
            topics.alerts,
            "--dlq-topic",
            topics.dlq,
            "--group-id",
            f"it-sasl-{suffix}",
            "--metrics-port",
            str(metrics_port),
        ],
        tmp_path / "dispatcher.log",
        env={
            **env,
            "FLEETPULSE_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/alerts",
            "FLEETPULSE_WEBHOOK_SECRET": secrets.token_hex(16),
        },
    ).start()
    procs = [gateway, dispatcher]
    try:
        wait_until(
            lambda: gateway_alerts_ready(gw_port),
            60,
            f"the gateway's alert reader on {bootstrap}\n{gateway.log_tail(20)}",
            interval_s=0.5,
        )
        # the simulator (confluent-kafka), properties from the environment
        sim = subprocess.run(
            [
                sys.executable,
                "-m",
                "simulator",
                "simulate",
                "--trucks",
                "4",
                "--hours",
                "12",
                "--seed",
                "3",
                "--fast",
                "--no-progress",
                "--bootstrap",
                bootstrap,
                "--gps-topic",
                topics.gps,
                "--scans-topic",
                topics.scans,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, **env},
        )
        assert sim.returncode == 0, sim.stderr[-3000:]

        # the tracking job (Flink's Kafka tables and the dead-letter sink), flags this time
        base = redis_url.rsplit("/", 1)[0]
        job = job_process(
            "flink_jobs.tracking.job",
            tmp_path / "job.log",
            bootstrap,
            f"{base}/6",
            topics,
            "--group-id",
            f"it-sasl-{suffix}-tracking",
            "--kafka-properties-file",
            str(props_file),
            "--fallback-grace-ms",
            "2000",
            "--restart-attempts",
            "0",  # a client that cannot log in fails the job at once
        ).start()
        procs.append(job)
        import redis

        positions = redis.Redis.from_url(f"{base}/6")
        try:

            def progress() -> tuple[str, object] | None:
                for proc in procs:
                    if not proc.alive():
                        return "died", proc
                read = records_read(metrics_port)
                return ("read", read) if read and positions.dbsize() else None

            _, detail = wait_until(
                progress, 240, "the dispatcher to read the job's alerts", interval_s=2
            )
            if isinstance(detail, ManagedProcess):
                raise AssertionError(f"{detail.name} died:\n{detail.log_tail(40)}")
            # the exporter (confluent-kafka admin client and consumer): the dispatcher's lag
            exporter = ManagedProcess(
                "exporter",
                [
                    str(FLEETPULSE),
                    "exporter",
                    "--port",
                    str(exporter_port := free_port()),
                    "--bootstrap",
                    bootstrap,
                    "--redis-url",
                    f"{base}/6",
                    "--group",
                    f"it-sasl-{suffix}",
                    "--alerts-topic",
                    topics.alerts,
                    "--dlq-topic",
                    topics.dlq,
                ],
                tmp_path / "exporter.log",
                env=env,
            ).start()
            procs.append(exporter)
            wait_until(
                lambda: [
                    x
                    for x in job_samples(exporter_port)
                    if x.name == "fleetpulse_kafka_consumer_lag_records"
                    and x.labels.get("group") == f"it-sasl-{suffix}"
                ],
                60,
                f"the exporter's lag of the dispatcher\n{exporter.log_tail(20)}",
                interval_s=0.5,
            )
        finally:
            positions.flushdb()
            positions.close()
    finally:
        for proc in procs:
            proc.stop()
    for proc in procs:
        assert password not in proc.log_path.read_text()

    # `fleetpulse dlq` (kafka-python): the dead letters of the simulator's malformed records
    dlq = [str(FLEETPULSE), "dlq", "--bootstrap", bootstrap, "--topic", topics.dlq]
    shown = subprocess.run(
        [*dlq, "--kafka-properties-file", str(props_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "@" in shown.stdout, shown.stderr[-2000:]
    wrong = tmp_path / "wrong.properties"
    wrong.write_text(props_file.read_text().replace(password, "not-the-password"))
    refused = subprocess.run(
        [*dlq, "--kafka-properties-file", str(wrong)], capture_output=True, text=True, timeout=60
    )
    assert refused.stdout == "", "read the topic with a wrong password"
