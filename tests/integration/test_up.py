"""`fleetpulse up` brings the whole system up on loopback, `status` reports it, Prometheus
scrapes every metric the dashboards and alert rules read, a component killed with ``kill -9``
comes back while the others keep running (a job from its latest checkpoint), one that keeps
dying stops everything with a non-zero exit naming it, and nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
import redis
import yaml

from fleetpulse.services.process import pid_alive
from fleetpulse.waiting import free_port, port_open, wait_until

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


def test_up_status_restarts_and_a_component_that_keeps_dying(tmp_path: Path) -> None:
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
        # two restarts per component within the window, the third death stops the stack
        FLEETPULSE_UP_MAX_RESTARTS="2",
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
        # Flink registers a labelled counter when it first counts: the delay job's
        # late_shipments waits for a late shipment, which the simulator's back-fill reaches only
        # after a minute or more; one produced here is late at once.
        produce_late_shipment(f"127.0.0.1:{ports['KAFKA']}", "UP-LATE")
        prometheus = f"http://127.0.0.1:{ports['PROMETHEUS']}"
        read = metrics_read_by_dashboards_and_rules()
        unseen: set[str] = set()

        def all_exposed() -> bool:
            unseen.clear()
            unseen.update(read - exposed_to(prometheus))
            return not unseen

        try:
            wait_until(all_exposed, 420, "every dashboard and rule metric in Prometheus", 1)
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

        # kill -9 one component after another, as a user would (the pid, not its group):
        # each comes back, the others keep their pids, `status` shows the restarts
        def pids() -> dict[str, int]:
            components = json.loads(state_file.read_text())["components"]
            return {name: info["pid"] for name, info in components.items()}

        def serving() -> bool:
            if up.poll() is not None:
                raise AssertionError((tmp_path / "up.log").read_text())
            status = fleetpulse("status", env=env)  # 2: a threshold (Flink's restarts)
            return status.returncode in (0, 2) and "DOWN" not in status.stdout

        def kill_and_see_it_back(
            name: str, serving_again: Callable[[], object], dependents: tuple[str, ...] = ()
        ) -> object:
            """kill -9 ``name``: it comes back and serves (``serving_again``'s value is
            returned), the others keep their pids (``dependents`` may die and come back)."""
            before = pids()
            os.kill(before[name], signal.SIGKILL)
            wait_until(
                lambda: pids()[name] != before[name] and pid_alive(pids()[name]),
                60,
                f"{name} to be restarted",
                interval_s=0.5,
            )
            value = wait_until(serving_again, 180, f"{name} serving again", interval_s=0.5)
            others = {n: p for n, p in pids().items() if n not in (name, *dependents)}
            assert others == {n: p for n, p in before.items() if n not in (name, *dependents)}
            return value

        def redis_now_ms() -> int:
            seconds, micros = client.time()  # type: ignore[misc]
            return int(seconds) * 1000 + int(micros) // 1000

        gateway_metrics = f"http://127.0.0.1:{ports['GATEWAY']}/metrics"
        dispatcher_metrics = f"http://127.0.0.1:{ports['DISPATCHER_METRICS']}/metrics"
        original = pids()
        # the map goes down and comes back reading positions; alerting keeps running
        kill_and_see_it_back("ws-gateway", lambda: stream_entries(gateway_metrics) > 0)
        kill_and_see_it_back("alert-dispatcher", lambda: metrics_answer(dispatcher_metrics))
        restored = kill_and_see_it_back(
            "tracking-job", lambda: latest_restored(f"http://127.0.0.1:{ports['TRACKING_REST']}")
        )
        assert isinstance(restored, dict) and "chk-" in restored["external_path"], restored
        # Redis replays its AOF; the jobs write again and the gateway reads again, same pids
        redis_kill_ms, gateway_entries = redis_now_ms(), stream_entries(gateway_metrics)
        kill_and_see_it_back(
            "redis",
            lambda: (
                newest_position_ms(client) > redis_kill_ms
                and stream_entries(gateway_metrics) > gateway_entries
            ),
        )
        # Kafka restarts from its log directory; the jobs, the dispatcher and the gateway
        # reconnect. The simulator exits when records time out in its producer and the
        # exporter's librdkafka may abort on a broker outage: `up` restarts them.
        kill_and_see_it_back(
            "kafka", lambda: port_open(ports["KAFKA"]), dependents=("simulator", "exporter")
        )
        # alerts flow end to end through the restarted broker and dispatcher
        produce_alert(f"127.0.0.1:{ports['KAFKA']}", "truck_offline:UP-RESTARTED")
        wait_until(
            lambda: any("UP-RESTARTED" in line for line in verified_alerts(env)),
            120,
            "an alert through the restarted broker and dispatcher",
            2,
        )
        wait_until(serving, 240, "every component serving after the restarts", 2)
        status = fleetpulse("status", env=env).stdout
        for name in ("ws-gateway", "alert-dispatcher", "tracking-job", "redis", "kafka"):
            line = next(line for line in status.splitlines() if line.startswith(name))
            assert "1 restart by up, last at" in line and "killed by SIGKILL" in line, status
        assert not any(
            line.startswith("delay-job") and "by up" in line for line in status.splitlines()
        ), status
        assert pids()["delay-job"] == original["delay-job"]

        # a component that keeps dying (its third death within the window) stops the stack
        components = json.loads(state_file.read_text())["components"]
        os.kill(components["ws-gateway"]["pid"], signal.SIGKILL)
        wait_until(
            lambda: pids()["ws-gateway"] != components["ws-gateway"]["pid"],
            60,
            "the gateway's second restart",
            interval_s=0.5,
        )
        components = json.loads(state_file.read_text())["components"]
        os.kill(components["ws-gateway"]["pid"], signal.SIGKILL)
        assert up.wait(timeout=120) != 0
        out = (tmp_path / "up.log").read_text()
        assert "component ws-gateway exited (killed by SIGKILL), 3 times within" in out, out
        assert fleetpulse("status", env=env).returncode != 0
        started = {info["pid"] for info in components.values()}
        wait_until(
            lambda: not any(pid_alive(pid) for pid in started), 30, "every process to be gone"
        )
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
        log.close()


def metrics_answer(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status == 200  # type: ignore[no-any-return]


def stream_entries(gateway_metrics: str) -> float:
    """How many stream:positions entries the gateway has read (its own counter)."""
    with urllib.request.urlopen(gateway_metrics, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("fleetpulse_gateway_stream_entries_total "):
                return float(line.split()[1])
    return 0.0


def newest_position_ms(client: redis.Redis) -> int:
    """Redis's clock time of the newest stream:positions entry (its id), 0 if none."""
    newest = cast(list, client.xrevrange("stream:positions", count=1))  # type: ignore[type-arg]
    return int(newest[0][0].decode().split("-")[0]) if newest else 0


def latest_restored(rest_url: str) -> dict | None:  # type: ignore[type-arg]
    """The checkpoint the running job was restored from (Flink's checkpoint statistics)."""
    with urllib.request.urlopen(f"{rest_url}/jobs/overview", timeout=10) as resp:
        jobs = [j for j in json.loads(resp.read())["jobs"] if j["state"] == "RUNNING"]
    if not jobs:
        return None
    with urllib.request.urlopen(f"{rest_url}/jobs/{jobs[0]['jid']}/checkpoints", timeout=10) as r:
        return json.loads(r.read())["latest"]["restored"]  # type: ignore[no-any-return]


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


def produce_late_shipment(bootstrap: str, shipment_id: str) -> None:
    """A pickup onto fleet.scans a day and more behind the simulator's back-fill, promised an
    hour after it and never delivered: the delay job finds it late at once."""
    from kafka import KafkaProducer

    from udfs.contract import DEFAULT_TOPICS

    ts = int(time.time() * 1000) - 30 * 3600_000
    doc = {
        "scan_id": f"{shipment_id}-1",
        "shipment_id": shipment_id,
        "type": "PICKED_UP",
        "ts": ts,
        "promised_by": ts + 3600_000,
        "lat": 47.61,
        "lng": -122.33,
        "dest_lat": 45.52,
        "dest_lng": -122.68,
    }
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(DEFAULT_TOPICS.scans, json.dumps(doc).encode(), shipment_id.encode()).get(30)
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
