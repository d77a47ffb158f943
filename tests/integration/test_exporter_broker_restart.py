"""`fleetpulse exporter` while its Kafka broker is killed (``kill -9``) and started again on the
same data directory and ports, twice: the exporter process stays up, counts the reads that
failed while the broker was down, and reports the group's lag again, new records included,
once the broker is back. (librdkafka's Admin API aborted the process on a connection dropped
under a coordinator request: librdkafka issues #4605, #3663.)"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from test_exporter import commit, produce, scrape, start_exporter, value

from fleetpulse.services.kafka import KafkaBroker, create_topics
from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import free_port, wait_until
from udfs.contract import contract_topics

pytestmark = pytest.mark.integration
RESTARTS = 2
LAG = "fleetpulse_kafka_consumer_lag_records"
ERRORS = "fleetpulse_exporter_scrape_errors_total"


class QuickRestartBroker(KafkaBroker):
    """A broker killed and started again serves clients only once its controller (the same
    process) has expired the killed incarnation's session: 9 s by default, 2 s here."""

    def _properties(self) -> str:
        return super()._properties() + (
            "broker.session.timeout.ms=2000\nbroker.heartbeat.interval.ms=500\n"
        )


def test_exporter_survives_broker_restarts_and_reports_lag_again(tmp_path: Path) -> None:
    broker = QuickRestartBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    kafka = broker.start(tmp_path / "kafka.log")
    exporter: ManagedProcess | None = None
    try:
        topic = contract_topics()[0].name
        create_topics(broker.bootstrap, contract_topics())
        group = f"restart-{uuid.uuid4().hex[:8]}"
        produce(broker.bootstrap, topic, [b"{}"] * 5)
        commit(broker.bootstrap, group, topic, 0, 2)
        exporter, port = start_exporter(
            tmp_path,
            "--bootstrap",
            broker.bootstrap,
            "--redis-url",
            f"redis://127.0.0.1:{free_port()}/0",  # not read here: fails fast
            "--group",
            group,
            "--timeout",
            "1",
            "--cache-seconds",
            "0.2",  # a reading (a round of requests) about every scrape
        )
        running = exporter

        def reading(wanted: float) -> bool:
            if not running.alive():
                pytest.fail(f"the exporter died ({running.exit_code()}):\n{running.log_tail()}")
            return value(scrape(port), LAG, group=group, topic=topic) == wanted

        wait_until(lambda: reading(3), 30, "the lag before any restart", interval_s=0.2)
        for restart in range(1, RESTARTS + 1):
            failed = value(scrape(port), ERRORS, source="kafka") or 0
            kafka.kill()

            def failing(failed: float = failed) -> bool:
                reading(-1)  # only to check the exporter is alive
                return (value(scrape(port), ERRORS, source="kafka") or 0) >= failed + 2

            wait_until(failing, 30, "reads failing while the broker is down", interval_s=0.2)
            kafka = broker.start(tmp_path / "kafka.log")
            produce(broker.bootstrap, topic, [b"{}"])
            wait_until(
                lambda restart=restart: reading(3 + restart),
                30,
                f"the lag after restart {restart}",
                interval_s=0.2,
            )
        assert exporter.alive()
    finally:
        if exporter is not None:
            exporter.stop()
            sys.stderr.write(exporter.log_tail(40))
        kafka.stop()
