"""`fleetpulse cluster start|status|stop`: a session cluster with one interpreter per
TaskManager (each pinned to a CPU of its own on request), started from the wheel's scripts in
the data directory, and gone after stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetpulse.services.process import pid_alive
from fleetpulse.waiting import free_port, wait_until

pytestmark = pytest.mark.integration


def fleetpulse(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetpulse.cli", "cluster", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cluster_start_status_stop(tmp_path: Path) -> None:
    rest = free_port()
    env = dict(
        os.environ,
        FLEETPULSE_DATA_DIR=str(tmp_path),
        FLEETPULSE_CLUSTER_REST_PORT=str(rest),
        FLEETPULSE_CLUSTER_RPC_PORT=str(free_port()),
    )
    started = fleetpulse(
        "start", "--taskmanagers", "2", "--slots", "1", "--pin-taskmanagers", env=env
    )
    try:
        assert started.returncode == 0, started.stderr
        assert f"--flink-url http://127.0.0.1:{rest} --parallelism 2" in started.stdout
        status = fleetpulse("status", env=env)
        assert status.returncode == 0
        assert "2 TaskManagers, 2/2 slots free, 0 jobs running" in status.stdout
        pid_files = list((tmp_path / "flink-cluster" / "pid").glob("*.pid"))
        pids = [int(x) for f in pid_files for x in f.read_text().split()]
        assert len(pids) == 3  # JobManager and two TaskManagers
        # --pin-taskmanagers: each TaskManager on a CPU of its own, the JobManager anywhere
        usable = sorted(os.sched_getaffinity(0))
        tm_pids = [
            int(x) for f in pid_files if "taskexecutor" in f.name for x in f.read_text().split()
        ]
        placed = [os.sched_getaffinity(pid) for pid in tm_pids]
        assert sorted(min(c) for c in placed) == sorted(usable[i % len(usable)] for i in (0, 1))
        assert all(len(c) == 1 for c in placed)
        jm_pid = next(p for p in pids if p not in tm_pids)
        assert sorted(os.sched_getaffinity(jm_pid)) == usable
        again = fleetpulse("start", env=env)
        assert again.returncode == 1 and "already running" in again.stderr
        assert fleetpulse("status", env=env).returncode == 0  # the refusal stopped nothing
    finally:
        fleetpulse("stop", env=env)
    for pid in pids:
        wait_until(lambda pid=pid: not pid_alive(pid), 60, f"cluster process {pid} to exit")
    assert fleetpulse("status", env=env).returncode == 1
