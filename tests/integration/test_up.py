"""`fleetpulse up` brings the whole system up on loopback, `status` reports it, Prometheus
scrapes every metric the dashboards and alert rules read, a dead component stops everything
with a non-zero exit naming it, and nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis
import yaml

from fleetpulse.services.process import pid_alive
from fleetpulse.waiting import free_port, wait_until

# The PromQL reader of the dashboards' static test (tests/unit/test_dashboards.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
import test_dashboards as dashboards  # noqa: E402

pytestmark = pytest.mark.integration


def fleetpulse(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetpulse.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_up_status_and_a_dying_component(tmp_path: Path) -> None:
    ports = {
        name: free_port()
        for name in (
            "KAFKA",
            "KAFKA_CONTROLLER",
            "REDIS",
            "GATEWAY",
            "DISPATCHER_METRICS",
            "RECEIVER",
            "TRACKING_METRICS",
            "DELAY_METRICS",
            "TRACKING_REST",
            "DELAY_REST",
            "EXPORTER",
            "PROMETHEUS",
        )
    }
    env = dict(
        os.environ,
        FLEETPULSE_DATA_DIR=str(tmp_path / "data"),
        # a loaded CI machine may checkpoint slowly at first; status' thresholds have unit tests
        FLEETPULSE_STATUS_MAX_CHECKPOINT_AGE="3600",
        **{f"FLEETPULSE_{k}_PORT": str(v) for k, v in ports.items()},
    )
    log = open(tmp_path / "up.log", "w")  # noqa: SIM115 - closed in finally
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetpulse.cli",
            "up",
            "--trucks",
            "50",
            "--speedup",
            "60",
            "--prometheus",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    state_file = tmp_path / "data" / "run" / "up.json"
    try:

        def all_healthy() -> bool:
            if up.poll() is not None:
                raise AssertionError((tmp_path / "up.log").read_text())
            return fleetpulse("status", env=env).returncode == 0

        wait_until(all_healthy, 300, "every component to report healthy", interval_s=1)
        status = fleetpulse("status", env=env).stdout
        for name in ("kafka", "redis", "tracking-job", "exporter", "alert-receiver"):
            assert f"{name}" in status and "DOWN" not in status
        assert "restarts 0, last checkpoint" in status  # the jobs' readings, from Flink REST
        exporter_url = f"http://127.0.0.1:{ports['EXPORTER']}/metrics"
        wait_until(
            lambda: (
                b'fleetpulse_flink_job_up{job="fleetpulse-tracking"} 1.0'
                in urllib.request.urlopen(exporter_url, timeout=30).read()
            ),
            60,
            "the exporter to report the tracking job up",
            interval_s=1,
        )
        # Redis requires the password `up` generated in the data directory, and no log shows it
        password = (tmp_path / "data" / "redis.secret").read_text().strip()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=ports["REDIS"]).ping()
        client = redis.Redis(port=ports["REDIS"], password=password)
        wait_until(
            lambda: any(client.scan_iter("truck:*")),
            180,
            "simulated positions in Redis",
            interval_s=0.5,
        )
        out = (tmp_path / "up.log").read_text()
        assert f"http://127.0.0.1:{ports['GATEWAY']}/?token=" in out
        logs = [out] + [
            p.read_text(errors="replace")
            for p in (tmp_path / "data" / "logs").rglob("*")
            if p.is_file()
        ]
        assert not any(password in text for text in logs)

        # Every metric a dashboard or an alert rule reads is one the running stack exposes:
        # with samples, or (a labelled family nothing has counted yet) with its metadata.
        prometheus = f"http://127.0.0.1:{ports['PROMETHEUS']}"
        read = metrics_read_by_dashboards_and_rules()
        unseen: set[str] = set()

        def all_exposed() -> bool:
            unseen.clear()
            unseen.update(read - exposed_to(prometheus))
            return not unseen

        try:
            wait_until(all_exposed, 420, "every dashboard and rule metric in Prometheus", 10)
        except Exception as exc:
            raise AssertionError(f"never exposed: {sorted(unseen)}") from exc
        rules = prometheus_get(prometheus, "/api/v1/rules")["groups"]
        assert rules and all(r["health"] == "ok" for g in rules for r in g["rules"]), rules

        # Alerts reach the local receiver, signed with up's secret, and `alerts tail` shows
        # them; one of the simulator's by now, else one produced here onto fleet.alerts.
        if not verified_alerts(env):
            produce_alert(f"127.0.0.1:{ports['KAFKA']}", "truck_offline:UP-TEST")
        wait_until(lambda: verified_alerts(env), 120, "a verified alert in `alerts tail`", 2)
        tail = fleetpulse("alerts", "tail", "-n", "100000", env=env).stdout
        assert "REJECTED" not in tail, tail
        time_, action, key, severity, summary, _ = verified_alerts(env)[0].split("\t")
        assert time_.endswith("Z") and action in ("trigger", "resolve", "acknowledge"), tail
        assert ":" in key and severity in ("critical", "error", "warning", "info"), tail
        assert "alerts tail --follow" in (tmp_path / "up.log").read_text()

        second = fleetpulse("up", "--no-simulator", env=env)
        assert second.returncode != 0
        assert "already running" in second.stderr

        components = json.loads(state_file.read_text())["components"]
        os.kill(components["redis"]["pid"], signal.SIGKILL)
        assert up.wait(timeout=120) != 0
        assert "component redis exited" in (tmp_path / "up.log").read_text()
        assert fleetpulse("status", env=env).returncode != 0
        for info in components.values():
            wait_until(
                lambda info=info: not pid_alive(info["pid"]), 30, f"pid {info['pid']} to be gone"
            )
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
        log.close()


def verified_alerts(env: dict[str, str]) -> list[str]:
    """Lines of `fleetpulse alerts tail` whose signature the local receiver verified."""
    out = fleetpulse("alerts", "tail", "-n", "100000", env=env).stdout
    return [line for line in out.splitlines() if line.endswith("\tsignature ok")]


def produce_alert(bootstrap: str, dedup_key: str) -> None:
    """One alert record onto fleet.alerts, as the jobs write them (docs/contract.md)."""
    from kafka import KafkaProducer

    from udfs.contract import DEFAULT_TOPICS

    subject = dedup_key.split(":", 1)[1]
    doc = {
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": f"truck {subject} offline (test_up)",
            "source": "fleetpulse/test_up",
            "severity": "critical",
            "component": f"truck:{subject}",
            "group": "WEST",
            "class": "truck_offline",
            "custom_details": {"truck_id": subject},
        },
    }
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(DEFAULT_TOPICS.alerts, json.dumps(doc).encode(), dedup_key.encode()).get(30)
    finally:
        producer.close()


def prometheus_get(base: str, path: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(base + path, timeout=10) as resp:
        return json.loads(resp.read())["data"]  # type: ignore[no-any-return]


def exposed_to(prometheus: str) -> set[str]:
    """Names with samples, the recording rules' included, and families the targets declare."""
    try:
        names = set(prometheus_get(prometheus, "/api/v1/label/__name__/values"))
        return names | set(prometheus_get(prometheus, "/api/v1/metadata"))
    except OSError:
        return set()


def metrics_read_by_dashboards_and_rules() -> set[str]:
    names: set[str] = set()
    for path in dashboards.DASHBOARDS:
        for _, query in dashboards.queries(dashboards.load(path)):
            names |= dashboards.metric_names(query)
    for path in sorted(dashboards.RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                names |= dashboards.metric_names(rule["expr"])
    assert len(names) > 40, names  # the reader found the queries
    return names
