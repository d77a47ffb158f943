"""`fleetpulse up` brings the whole system up on loopback, `status` reports it, a dead
component stops everything with a non-zero exit naming it, and nothing is left behind."""

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

from fleetpulse.services.process import pid_alive
from fleetpulse.waiting import free_port, wait_until

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
            "TRACKING_METRICS",
            "DELAY_METRICS",
            "TRACKING_REST",
            "DELAY_REST",
            "EXPORTER",
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
        [sys.executable, "-m", "fleetpulse.cli", "up", "--trucks", "12", "--speedup", "60"],
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
        for name in ("kafka", "redis", "tracking-job", "exporter"):
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
        client = redis.Redis(port=ports["REDIS"])
        wait_until(
            lambda: any(client.scan_iter("truck:*")),
            180,
            "simulated positions in Redis",
            interval_s=0.5,
        )
        out = (tmp_path / "up.log").read_text()
        assert f"http://127.0.0.1:{ports['GATEWAY']}/?token=" in out

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
