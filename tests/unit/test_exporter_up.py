"""What `fleetpulse up` adds for the operations view, without starting anything: the Prometheus
configuration it generates (checked by the real promtool where installed), the scrape targets,
the clear refusal when the prometheus binary is missing, and the state `status` reads."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetpulse import PlatformError
from fleetpulse.config import UpSettings
from fleetpulse.exporter import prometheus
from fleetpulse.services.process import ManagedProcess
from fleetpulse.supervisor import Component, JobInfo, MonitoringSettings, Supervisor

pytestmark = pytest.mark.unit


def supervisor(tmp_path: Path, names: list[str], **kw: object) -> Supervisor:
    sup = Supervisor(
        UpSettings(data_dir=tmp_path, **kw),  # type: ignore[arg-type]
        say=lambda _m: None,
        monitoring=MonitoringSettings(exporter_port=9300, prometheus=True, prometheus_port=9301),
    )
    sup.components = [Component(n, ManagedProcess(n, ["true"], tmp_path / "x.log")) for n in names]
    return sup


def test_scrape_targets_are_the_running_components_with_metrics(tmp_path: Path) -> None:
    sup = supervisor(
        tmp_path, ["kafka", "redis", "tracking-job", "delay-job", "alert-dispatcher", "exporter"]
    )
    assert sup.scrape_targets() == {
        "tracking-job": ["127.0.0.1:9250"],
        "delay-job": ["127.0.0.1:9251"],
        "alert-dispatcher": ["127.0.0.1:9252"],
        "fleetpulse-exporter": ["127.0.0.1:9300"],
        "prometheus": ["127.0.0.1:9301"],
    }


def test_jobs_on_a_cluster_are_not_scraped_directly(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, ["exporter", "ws-gateway"], flink_url="flink:8081")
    assert sup.scrape_targets() == {
        "ws-gateway": ["127.0.0.1:8765"],
        "fleetpulse-exporter": ["127.0.0.1:9300"],
        "prometheus": ["127.0.0.1:9301"],
    }


def test_config_honours_the_exporters_job_label_and_loads_the_rules(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    assert prometheus.rule_files(rules_dir) == []
    rules_dir.mkdir()
    cfg = prometheus.config(
        {"fleetpulse-exporter": ["127.0.0.1:9108"], "tracking-job": ["127.0.0.1:9250"], "x": []},
        prometheus.rule_files(rules_dir),
    )
    assert cfg["rule_files"] == [str(rules_dir / "*.yml")]
    jobs = {c["job_name"]: c for c in cfg["scrape_configs"]}
    assert set(jobs) == {"fleetpulse-exporter", "tracking-job"}
    assert jobs["fleetpulse-exporter"]["honor_labels"] is True
    assert "honor_labels" not in jobs["tracking-job"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_generated_config_with_the_projects_rules(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, ["tracking-job", "exporter"])
    path = prometheus.write_config(
        tmp_path / "prometheus.yml",
        prometheus.config(sup.scrape_targets(), prometheus.rule_files()),
    )
    json.loads(path.read_text())  # JSON, read by Prometheus as YAML
    check = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_missing_prometheus_binary_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fleetpulse.supervisor.check_java", lambda: None)
    sup = Supervisor(
        UpSettings(data_dir=tmp_path),
        say=lambda _m: None,
        monitoring=MonitoringSettings(prometheus=True, prometheus_bin="no-such-prometheus-bin"),
    )
    with pytest.raises(PlatformError, match="no-such-prometheus-bin.*apt-get install prometheus"):
        sup.start_all()
    assert sup.components == []


def test_state_names_what_status_reads(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, [])
    sup.jobs = [JobInfo("tracking-job", "fleetpulse-tracking", "http://127.0.0.1:8081", "g")]
    sup.groups = {"tracking-job": "g", "alert-dispatcher": "fleetpulse-alerting"}
    sup._write_state()
    state = json.loads(sup.settings.state_file.read_text())
    assert state["kafka_bootstrap"] == "127.0.0.1:9092"
    assert state["redis_url"] == "redis://127.0.0.1:6379/0"
    assert state["jobs"] == [
        {
            "component": "tracking-job",
            "flink_job": "fleetpulse-tracking",
            "rest_url": "http://127.0.0.1:8081",
            "group": "g",
        }
    ]
    assert state["groups"]["alert-dispatcher"] == "fleetpulse-alerting"
