"""Platform faults get messages that say what is wrong and what is needed."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from fleetpulse import PlatformError
from fleetpulse.config import UpSettings
from fleetpulse.supervisor import Supervisor, check_java, write_state
from fleetpulse.waiting import Timeout, check_port_free, free_port, wait_until

pytestmark = pytest.mark.unit


def test_taken_port_is_named_with_its_component() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PlatformError, match=f"port {port} for Kafka is already in use"):
            check_port_free(port, "Kafka")


def test_free_ports_avoid_the_ephemeral_range_outgoing_connections_use() -> None:
    low, high = (int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = {free_port() for _ in range(20)}
    assert all(not low <= port <= high for port in ports)
    assert len(ports) > 1
    for port in ports:
        check_port_free(port, "Redis")


def test_second_up_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    settings = UpSettings(data_dir=tmp_path)
    write_state(settings.state_file, {"supervisor_pid": os.getpid(), "components": {}})
    with pytest.raises(PlatformError, match="already running"):
        Supervisor(settings).refuse_second_instance()


def test_stale_state_of_a_dead_supervisor_does_not_block(tmp_path: Path) -> None:
    settings = UpSettings(data_dir=tmp_path)
    write_state(settings.state_file, {"supervisor_pid": 2**22 + 12345, "components": {}})
    Supervisor(settings).refuse_second_instance()


def fake_java(tmp_path: Path, version: str) -> None:
    exe = tmp_path / "java"
    exe.write_text(f"#!/bin/sh\necho '    java.specification.version = {version}' >&2\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def test_old_java_is_refused_with_what_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_java(tmp_path, "11")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlatformError, match="Java 17 or newer is needed, found Java 11"):
        check_java()


def test_missing_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlatformError, match="no `java` on PATH"):
        check_java()


def test_java_17_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_java(tmp_path, "17")
    monkeypatch.setenv("PATH", str(tmp_path))
    check_java()


def test_wait_until_returns_the_value_and_names_what_timed_out() -> None:
    calls = iter([None, 0, "ready"])
    assert wait_until(lambda: next(calls), 5, "a value", interval_s=0.001) == "ready"

    def boom() -> None:
        raise ConnectionError("refused")

    with pytest.raises(Timeout, match="the broker .*refused"):
        wait_until(boom, 0.05, "the broker", interval_s=0.01)


def test_pinned_jobs_get_a_cpu_each_and_unpinned_ones_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flink_jobs.runtime import affinity

    monkeypatch.setattr(affinity.os, "sched_getaffinity", lambda pid: {0, 1})
    assert Supervisor(UpSettings(data_dir=tmp_path, pin_jobs=True)).job_cpus(2) == ["0", "1"]
    assert Supervisor(UpSettings(data_dir=tmp_path)).job_cpus(2) == ["", ""]
    # submitted to a cluster, the TaskManagers' placement is the cluster's
    assert Supervisor(
        UpSettings(data_dir=tmp_path, pin_jobs=True, flink_url="http://127.0.0.1:8091")
    ).job_cpus(2) == ["", ""]


def test_up_submits_jobs_with_the_redis_password_outside_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up --flink-url`: `ps` and the Flink UI show a job's argv; the password-bearing Redis
    URL goes to the job's driver in its environment instead."""
    from fleetpulse.services import flink

    submitted: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(
        flink, "submit", lambda url, module, args, env=None: submitted.append((args, env)) or "j"
    )
    settings = UpSettings(
        data_dir=tmp_path, flink_url="http://127.0.0.1:8091", redis_password="s3cret-pw"
    )
    Supervisor(settings)._start_jobs()
    assert len(submitted) == 2
    for args, env in submitted:
        assert not any("s3cret-pw" in a for a in args)
        assert "--redis-url" not in args
        assert "s3cret-pw" in env["FLEETPULSE_REDIS_URL"]


def test_up_processes_do_not_inherit_a_secured_clusters_kafka_properties() -> None:
    from fleetpulse.supervisor import drop_kafka_properties

    environ = {
        "FLEETPULSE_KAFKA_PROPERTIES_FILE": "/etc/msk.properties",
        "FLEETPULSE_KAFKA_PROPERTY": "security.protocol=SASL_SSL",
        "FLEETPULSE_SIM_TRUCKS": "50",
    }
    assert drop_kafka_properties(environ) == [
        "FLEETPULSE_KAFKA_PROPERTIES_FILE",
        "FLEETPULSE_KAFKA_PROPERTY",
    ]
    assert environ == {"FLEETPULSE_SIM_TRUCKS": "50"}
    assert drop_kafka_properties(environ) == []


def _topic(name: str, error: int = 0, leaders: tuple[int, ...] = (1, 1)) -> dict[str, object]:
    return {
        "name": name,
        "error_code": error,
        "partitions": [
            {"partition_index": i, "error_code": 0, "leader_id": leader}
            for i, leader in enumerate(leaders)
        ],
    }


def test_a_topic_is_ready_only_when_every_partition_has_a_leader() -> None:
    from fleetpulse.services.kafka import topics_ready

    assert topics_ready([_topic("a"), _topic("b")], ["a", "b"])
    assert not topics_ready([_topic("a")], ["a", "b"])  # not described yet
    assert not topics_ready([_topic("a", error=3, leaders=())], ["a"])  # unknown to the broker
    assert not topics_ready([_topic("a", leaders=())], ["a"])  # no partitions yet
    assert not topics_ready([_topic("a", leaders=(1, -1))], ["a"])  # one without a leader
