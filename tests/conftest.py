"""Session-scoped real services for the `integration` tests: a Kafka broker and a Redis server on
free loopback ports, started by the project's own launchers and always stopped.

Fixtures:
  kafka_bootstrap  "127.0.0.1:PORT" of a KRaft broker with the contract topics created
  redis_url        "redis://127.0.0.1:PORT/0" of a private redis-server
  redis_cluster_url  any node of a private three-master Redis Cluster (redis-server processes)
  redis_client     a redis.Redis on it, flushed before each test that asks for it
  unique_topics    a TopicNames with fresh names (so tests never see each other's records)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from fleetpulse.services.kafka import KafkaBroker, create_topics
from fleetpulse.services.redis_server import RedisServer
from fleetpulse.waiting import free_port
from udfs.contract import TopicNames, contract_topics


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (./dev.sh test-all); without it they are deselected",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the default run (CI's) within its time budget: slow tests only with --slow."""
    if config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


# Shared 2-core machines: time limits per example would make property tests flaky.
settings.register_profile("fleetpulse", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fleetpulse")


@pytest.fixture(scope="session")
def service_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def kafka_bootstrap(service_dir: Path) -> Iterator[str]:
    broker = KafkaBroker(service_dir / "kafka", port=free_port(), controller_port=free_port())
    proc = broker.start(service_dir / "kafka.log")
    try:
        create_topics(broker.bootstrap, contract_topics())
        yield broker.bootstrap
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def redis_url(service_dir: Path) -> Iterator[str]:
    server = RedisServer(service_dir / "redis", port=free_port(), persist=False)
    proc = server.start(service_dir / "redis.log")
    try:
        yield server.url
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(service_dir: Path) -> Iterator[str]:
    """Any node of a private three-master Redis Cluster (started on first use)."""
    from fleetpulse.services.redis_cluster import local_cluster

    with local_cluster(service_dir / "redis-cluster") as cluster:
        yield cluster.url


@pytest.fixture()
def redis_client(redis_url: str):  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture()
def unique_topics(kafka_bootstrap: str) -> TopicNames:
    """Fresh topic names per test, created on the session broker."""
    suffix = uuid.uuid4().hex[:8]
    names = TopicNames(
        gps=f"fleet.gps.{suffix}",
        scans=f"fleet.scans.{suffix}",
        alerts=f"fleet.alerts.{suffix}",
        geofence_events=f"fleet.geofence-events.{suffix}",
        dlq=f"fleet.dlq.{suffix}",
    )
    create_topics(kafka_bootstrap, contract_topics(names))
    return names
