"""`up`'s restart policy on a fake clock, and the supervisor applying it to real (``sleep``)
processes: a dead component comes back after its backoff with the others untouched, and one
that keeps dying is named and stops the stack."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from fleetpulse import PlatformError
from fleetpulse.config import UpSettings
from fleetpulse.restart_policy import RestartHistory, RestartPolicy
from fleetpulse.services.process import ManagedProcess
from fleetpulse.supervisor import (
    Component,
    Supervisor,
    component_health,
    describe_exit,
    describe_restarts,
)

pytestmark = pytest.mark.unit


def test_backoff_doubles_from_one_second_to_thirty() -> None:
    history = RestartHistory(RestartPolicy(max_restarts=10, window_s=1e9))
    delays = [history.on_death(float(t)) for t in range(7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_gives_up_only_after_more_than_max_deaths_within_the_window() -> None:
    history = RestartHistory(RestartPolicy(max_restarts=3, window_s=600))
    assert [history.on_death(t) for t in (0.0, 10.0, 20.0)] == [1.0, 2.0, 4.0]
    assert history.on_death(30.0) is None


def test_deaths_older_than_the_window_are_forgotten_and_the_backoff_resets() -> None:
    history = RestartHistory(RestartPolicy(max_restarts=3, window_s=600))
    for t in (0.0, 10.0, 20.0):
        history.on_death(t)
    assert history.on_death(615.0) == 2.0  # the deaths at 0 and 10 s have left the window
    assert history.on_death(2000.0) == 1.0
    assert history.deaths == [2000.0]


def test_zero_restarts_gives_up_at_the_first_death() -> None:
    assert RestartHistory(RestartPolicy(max_restarts=0)).on_death(0.0) is None


def test_policy_from_the_environment() -> None:
    assert RestartPolicy.from_env({}) == RestartPolicy()
    policy = RestartPolicy.from_env(
        {"FLEETPULSE_UP_MAX_RESTARTS": "2", "FLEETPULSE_UP_RESTART_WINDOW": "60"}
    )
    assert (policy.max_restarts, policy.window_s) == (2, 60.0)
    for bad in ({"FLEETPULSE_UP_MAX_RESTARTS": "x"}, {"FLEETPULSE_UP_MAX_RESTARTS": "-1"}):
        with pytest.raises(PlatformError, match="FLEETPULSE_UP_MAX_RESTARTS"):
            RestartPolicy.from_env(bad)


def test_exit_statuses_read_as_people_say_them() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "status 3"
    assert describe_exit(None) == "status unknown"
    assert describe_restarts(None) == ""
    assert describe_restarts({"count": 0, "restarting": False}) == ""


def sleeping(tmp_path: Path, name: str) -> ManagedProcess:
    return ManagedProcess(name, ["sleep", "600"], tmp_path / f"{name}.log").start()


def test_supervisor_restarts_the_dead_one_and_leaves_the_others(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(
        UpSettings(data_dir=tmp_path),
        say=said.append,
        restart_policy=RestartPolicy(max_restarts=2, window_s=600),
    )
    try:
        for name in ("redis", "ws-gateway"):
            sup._add(Component(name, sleeping(tmp_path, name), ports=[]))
        redis, gateway = sup.components
        redis_pid, gateway_pid = redis.process.pid, gateway.process.pid
        assert sup.tend(100.0) is None and gateway.restart_at is None

        gateway.process.kill()  # SIGKILL, as a user would
        assert sup.tend(100.0) is None
        assert gateway.restart_at == 101.0 and "killed by SIGKILL" in said[-1]
        info = json.loads(sup.settings.state_file.read_text())["components"]["ws-gateway"]
        ok, detail = component_health("ws-gateway", info)
        assert not ok and "restarting after it exited (killed by SIGKILL)" in detail
        assert sup.tend(100.5) is None and gateway.restart_at == 101.0  # backoff not over
        assert sup.tend(101.0) is None
        assert gateway.process.alive() and gateway.process.pid != gateway_pid
        assert redis.process.pid == redis_pid and redis.process.alive()
        info = json.loads(sup.settings.state_file.read_text())["components"]["ws-gateway"]
        assert info["pid"] == gateway.process.pid
        assert info["restarts"]["count"] == 1 and info["restarts"]["last_exit"] == -signal.SIGKILL
        ok, detail = component_health("ws-gateway", info)
        assert ok and "1 restart by up, last at" in detail and "(killed by SIGKILL)" in detail

        gateway.process.kill()  # second death: backoff 2 s
        assert sup.tend(110.0) is None and gateway.restart_at == 112.0
        assert sup.tend(112.0) is None and gateway.process.alive()
        gateway.process.kill()  # third within the window, max 2 restarts: give up
        assert sup.tend(120.0) is gateway
        assert redis.process.alive()
        assert "ws-gateway" in sup._give_up_message(gateway)
        assert "3 times within 600 s" in sup._give_up_message(gateway)
    finally:
        sup.stop_all()
    assert not any(c.process.alive() for c in sup.components)


def test_a_restart_that_fails_to_start_counts_as_a_death(tmp_path: Path) -> None:
    sup = Supervisor(
        UpSettings(data_dir=tmp_path),
        say=lambda _m: None,
        restart_policy=RestartPolicy(max_restarts=1, window_s=600),
    )

    def cannot_start() -> ManagedProcess:
        raise PlatformError("port taken")

    try:
        sup._add(Component("kafka", sleeping(tmp_path, "kafka"), restart=cannot_start))
        (kafka,) = sup.components
        kafka.process.kill()
        assert sup.tend(0.0) is None  # first death: restart in 1 s
        assert sup.tend(1.0) is kafka  # the restart raised: second death, over the limit
    finally:
        sup.stop_all()


def test_up_refuses_a_bad_restart_limit_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETPULSE_UP_MAX_RESTARTS", "many")
    sup = Supervisor(UpSettings(data_dir=tmp_path), say=lambda _m: None)
    with pytest.raises(PlatformError, match="FLEETPULSE_UP_MAX_RESTARTS"):
        sup.start_all()
    assert not sup.components and not (tmp_path / "run").exists()
