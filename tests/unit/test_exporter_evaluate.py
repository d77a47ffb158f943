"""Thresholds over readings, and `fleetpulse status`' output and exit codes from evaluated
readings (the state file of a running `up` written by hand; no servers)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetpulse.commands import status
from fleetpulse.exporter import ExporterError
from fleetpulse.exporter.evaluate import Thresholds, evaluate
from fleetpulse.exporter.readings import JobReading, LagReading, Readings, RedisReading
from fleetpulse.exporter.status import exit_code, report

pytestmark = pytest.mark.unit

T = Thresholds(max_lag_records=100, max_checkpoint_age_s=60, max_restarts=0)
TRACKING = "fleetpulse-tracking"


def readings(
    restarts: int = 0, age: float = 5.0, lag: int = 10, state: str = "RUNNING"
) -> Readings:
    return Readings(
        redis=RedisReading((), {}, 2.0),
        lags=(LagReading(TRACKING, "fleet.gps", lag), LagReading("other-group", "x", 10**9)),
        jobs=(JobReading(TRACKING, "http://127.0.0.1:8081", state, restarts, age),),
    )


def test_healthy_readings_have_no_problems() -> None:
    assert evaluate(readings(), T, jobs=[TRACKING], groups=[TRACKING]) == []


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"restarts": 1}, "restarted 1 time(s)"),
        ({"age": 61.0}, "last completed checkpoint 61 s ago"),
        ({"lag": 101}, "101 records behind on fleet.gps"),
        ({"state": "RESTARTING"}, "job is RESTARTING"),
        ({"state": "UNREACHABLE"}, "job is UNREACHABLE"),
    ],
)
def test_each_threshold_is_a_problem(kw: dict[str, object], words: str) -> None:
    found = evaluate(readings(**kw), T, jobs=[TRACKING], groups=[TRACKING])  # type: ignore[arg-type]
    assert [words in str(p) for p in found] == [True]


def test_at_the_threshold_is_still_fine_and_unknowns_are_no_problem() -> None:
    assert evaluate(readings(age=60.0, lag=100), T, jobs=[TRACKING], groups=[TRACKING]) == []
    unknown = Readings(jobs=(JobReading(TRACKING, "u", "RUNNING", None, None),))
    assert evaluate(unknown, T, jobs=[TRACKING]) == []
    assert evaluate(Readings(errors={"kafka": "down"}), T, jobs=[TRACKING]) == []


def test_groups_and_jobs_not_watched_are_ignored_but_a_missing_job_is_not() -> None:
    assert evaluate(readings(), T, groups=None) != []  # other-group's huge lag counts
    missing = evaluate(readings(), T, jobs=[TRACKING, "fleetpulse-delay"], groups=[TRACKING])
    assert [p.subject for p in missing] == ["fleetpulse-delay"]


def test_thresholds_refuse_bad_values_naming_the_flag() -> None:
    for bad, flag in (
        (Thresholds(max_lag_records=-1), "--max-lag"),
        (Thresholds(max_checkpoint_age_s=0), "--max-checkpoint-age"),
        (Thresholds(max_restarts=-2), "--max-restarts"),
    ):
        with pytest.raises(ExporterError, match=flag):
            bad.validate()


def state(tmp: Path, on_cluster: bool = False) -> dict[str, object]:
    components = {} if on_cluster else {"tracking-job": {"pid": os.getpid(), "ports": []}}
    components["alert-dispatcher"] = {"pid": os.getpid(), "ports": []}
    return {
        "supervisor_pid": os.getpid(),
        "ready": True,
        "data_dir": str(tmp),
        "kafka_bootstrap": "127.0.0.1:1",
        "redis_url": "redis://127.0.0.1:1/0",
        "jobs": [
            {
                "component": "tracking-job",
                "flink_job": TRACKING,
                "rest_url": "http://127.0.0.1:8081",
                "group": TRACKING,
            }
        ],
        "groups": {"tracking-job": TRACKING, "alert-dispatcher": "fleetpulse-alerting"},
        "components": components,
    }


def test_report_details_per_component_and_for_a_cluster_job(tmp_path: Path) -> None:
    r = report(state(tmp_path), readings(restarts=2), T)
    assert r.details["tracking-job"] == ("restarts 2, last checkpoint 5 s ago, lag fleet.gps 10")
    assert r.details["alert-dispatcher"] == "lag unknown"
    assert "positions          newest written 2 s ago" in r.extra
    assert [p.subject for p in r.problems] == [TRACKING]
    on_cluster = report(state(tmp_path, on_cluster=True), readings(), T)
    assert "tracking-job" not in on_cluster.details
    assert any("RUNNING at http://127.0.0.1:8081" in line for line in on_cluster.extra)


def test_a_job_whose_rest_api_did_not_answer_is_unknown_not_missing(tmp_path: Path) -> None:
    unread = Readings(jobs=(), errors={"flink http://127.0.0.1:8081": "refused"})
    assert report(state(tmp_path), unread, T).problems == []
    on_cluster = report(state(tmp_path, on_cluster=True), unread, T)
    assert [str(p) for p in on_cluster.problems] == [
        "fleetpulse-tracking: the Flink REST API at http://127.0.0.1:8081 did not answer"
    ]
    answered = Readings(jobs=())
    assert [p.message for p in report(state(tmp_path), answered, T).problems] == [
        "no such job at the Flink REST API"
    ]


def test_exit_codes() -> None:
    assert exit_code(False, []) == 0
    assert exit_code(True, []) == 1
    assert exit_code(True, evaluate(readings(restarts=3), T)) == 1  # down says more
    assert exit_code(False, evaluate(readings(restarts=3), T)) == 2


def run_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: Readings | None, *args: str
) -> tuple[int, str]:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "up.json").write_text(json.dumps(state(tmp_path)))
    monkeypatch.setattr("fleetpulse.exporter.status.take_readings", lambda _s, _t: taken)
    result = CliRunner().invoke(status, ["--data-dir", str(tmp_path), *args])
    return result.exit_code, result.output


def test_status_exits_0_when_all_is_well(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run_status(tmp_path, monkeypatch, readings())
    assert code == 0, out
    assert "restarts 0, last checkpoint 5 s ago, lag fleet.gps 10" in out


def test_status_exits_2_past_a_threshold_and_the_flag_moves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = run_status(tmp_path, monkeypatch, readings(restarts=1, age=400.0))
    assert code == 2, out
    assert "PROBLEM  fleetpulse-tracking: restarted 1 time(s)" in out
    assert "last completed checkpoint 400 s ago (more than --max-checkpoint-age 300 s)" in out
    code, out = run_status(
        tmp_path,
        monkeypatch,
        readings(restarts=1, age=400.0),
        "--max-restarts",
        "1",
        "--max-checkpoint-age",
        "500",
    )
    assert code == 0, out


def test_status_exits_2_on_lag_set_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETPULSE_STATUS_MAX_LAG", "5")
    code, out = run_status(tmp_path, monkeypatch, readings(lag=6))
    assert code == 2 and "6 records behind on fleet.gps (more than --max-lag 5)" in out


def test_status_exits_1_when_a_component_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = state(tmp_path)
    s["components"] = {"tracking-job": {"pid": 2**22 + 12345, "ports": []}}  # no such process
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "up.json").write_text(json.dumps(s))
    monkeypatch.setattr("fleetpulse.exporter.status.take_readings", lambda _s, _t: readings())
    result = CliRunner().invoke(status, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "DOWN" in result.output


def test_status_without_readings_still_reports_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = run_status(tmp_path, monkeypatch, None)
    assert code == 0 and "tracking-job" in out and "PROBLEM" not in out


def test_status_refuses_a_bad_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run_status(tmp_path, monkeypatch, readings(), "--max-lag", "-3")
    assert code == 1 and "--max-lag must be 0 or more" in out


def test_status_exits_3_when_not_running(tmp_path: Path) -> None:
    result = CliRunner().invoke(status, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 3
