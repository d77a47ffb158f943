"""A single-node Apache Kafka 4 broker in KRaft mode (broker and controller in one process)."""

from __future__ import annotations

import base64
import contextlib
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetpulse import PlatformError
from fleetpulse.paths import kafka_classpath
from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import check_port_free, free_port, port_open, wait_until
from udfs.contract import TopicSpec
from udfs.kafka_properties import NONE, KafkaProperties

LOG4J2_YAML = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


SCRAM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class SaslSslListener:
    """A second client listener, SASL_SSL with SCRAM-SHA-512, for clients that must
    authenticate (tests of the Kafka client properties); the PLAINTEXT one stays for the
    broker itself."""

    port: int
    keystore: Path  # PKCS12: the broker's key and certificate
    keystore_password: str
    users: Mapping[str, str]  # SCRAM user -> password, stored when the storage is formatted

    def properties(self) -> list[str]:
        prefix = "listener.name.sasl_ssl."
        return [
            f"sasl.enabled.mechanisms={SCRAM}",
            f"{prefix}{SCRAM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"{prefix}ssl.keystore.location={self.keystore}",
            f"{prefix}ssl.keystore.password={self.keystore_password}",
            f"{prefix}ssl.keystore.type=PKCS12",
        ]

    def format_args(self) -> list[str]:
        return [
            arg
            for user, password in self.users.items()
            for arg in ("--add-scram", f"{SCRAM}=[name={user},password={password}]")
        ]


@dataclass
class KafkaBroker:
    """Formats a KRaft log directory on first use, then runs ``kafka.Kafka`` on loopback."""

    data_dir: Path
    port: int
    controller_port: int
    heap_mb: int = 512
    secure: SaslSslListener | None = None

    @property
    def secure_bootstrap(self) -> str:
        """The SASL_SSL listener's address (``secure`` must be set)."""
        assert self.secure is not None
        return f"127.0.0.1:{self.secure.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> str:
        client = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        if self.secure is not None:
            client.append(f"SASL_SSL://127.0.0.1:{self.secure.port}")
            protocols += ",SASL_SSL:SASL_SSL"
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners={','.join(client)},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners={','.join(client)}",
                "controller.listener.names=CONTROLLER",
                f"listener.security.protocol.map={protocols}",
                *(self.secure.properties() if self.secure is not None else []),
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.data_dir / 'logs'}",
                "num.partitions=2",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "message.max.bytes=2097152",
                "log.retention.check.interval.ms=60000",
                "",
            ]
        )

    def _java(self, main: str, *args: str, heap_mb: int = 256) -> list[str]:
        return [
            "java",
            f"-Xmx{heap_mb}m",
            "-XX:+UseSerialGC" if heap_mb <= 256 else "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1" if heap_mb <= 256 else "-XX:+UseStringDeduplication",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
            "-cp",
            kafka_classpath(),
            main,
            *args,
        ]

    def prepare(self) -> None:
        """Write the configuration and format the storage once (KRaft needs a cluster id)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "server.properties").write_text(self._properties())
        (self.data_dir / "log4j2.yaml").write_text(LOG4J2_YAML)
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt = ManagedProcess(
            "kafka-format",
            self._java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # ids may start with "-": keep it attached
                "-c",
                str(self.data_dir / "server.properties"),
                *(self.secure.format_args() if self.secure is not None else []),
            ),
            self.data_dir / "format.log",
        ).start()
        assert fmt.popen is not None
        if fmt.popen.wait(timeout=120) != 0:
            raise PlatformError(f"formatting Kafka storage failed:\n{fmt.log_tail()}")

    def process(self, log_path: Path) -> ManagedProcess:
        return ManagedProcess(
            "kafka",
            self._java(
                "kafka.Kafka", str(self.data_dir / "server.properties"), heap_mb=self.heap_mb
            ),
            log_path,
        )

    def start(self, log_path: Path, timeout_s: float = 90.0) -> ManagedProcess:
        check_port_free(self.port, "Kafka")
        check_port_free(self.controller_port, "Kafka controller")
        self.prepare()
        proc = self.process(log_path).start()

        def ready() -> bool:
            if not proc.alive():
                raise PlatformError(f"Kafka exited during start-up:\n{proc.log_tail()}")
            return port_open(self.port) and broker_answers(self.bootstrap)

        try:
            wait_until(ready, timeout_s, f"Kafka on {self.bootstrap}", interval_s=0.25)
        except Exception:
            proc.stop()
            raise
        return proc


def broker_answers(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


def topics_ready(described: list[dict[str, Any]], wanted: Iterable[str]) -> bool:
    """Whether the topic metadata ``described`` (kafka-python's ``describe_topics``) shows
    every topic of ``wanted`` with partitions, each of them led by a broker."""
    by_name = {t.get("name"): t for t in described}
    for name in wanted:
        topic = by_name.get(name)
        if topic is None or topic.get("error_code") or not topic.get("partitions"):
            return False
        if any(p.get("error_code") or p.get("leader_id", -1) < 0 for p in topic["partitions"]):
            return False
    return True


def create_topics(
    bootstrap: str, specs: Iterable[TopicSpec], properties: KafkaProperties = NONE
) -> None:
    """Create the missing topics, and return when every partition of every topic has a
    leader; existing ones are left as they are. ``properties``: the user's Kafka client
    properties (security)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=15000, **properties.kafka_python()
    )
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=1,
                topic_configs={"retention.ms": str(s.retention_ms)},
            )
            for s in specs
            if s.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        wanted = sorted({s.name for s in specs})
        # Listed is not usable: until each partition has a leader, a producer gets
        # NotLeaderForPartition and a consumer group may be assigned nothing for the topic.
        wait_until(
            lambda: topics_ready(admin.describe_topics(wanted), wanted),
            30,
            f"topics {wanted} with a leader for every partition",
        )
    finally:
        admin.close()


@contextlib.contextmanager
def given_or_private_broker(
    bootstrap: str | None, specs: Iterable[TopicSpec] = ()
) -> Iterator[str]:
    """The benchmarks' broker: ``bootstrap`` when given (``--bootstrap``), else one of their
    own on free loopback ports with ``specs`` created, stopped and deleted afterwards."""
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="fleetpulse-kafka-") as work:
        broker = KafkaBroker(Path(work) / "kafka", port=free_port(), controller_port=free_port())
        proc = broker.start(Path(work) / "kafka.log")
        try:
            create_topics(broker.bootstrap, specs)
            yield broker.bootstrap
        finally:
            proc.stop()
