"""fleetpulse's Prometheus rules (deploy/prometheus/rules) are valid, tested and documented.

promtool (Debian's prometheus package, installed by ./dev.sh setup) checks every rules file and
runs the unit tests of deploy/prometheus/tests, which feed each alert series on which it must
fire and series on which it must not. The rest is read from the YAML: every alert has both
kinds of case, a severity, a summary, a description and a runbook section in
docs/operations.md that exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES_DIR = PROM_DIR / "rules"
TESTS_DIR = PROM_DIR / "tests"
RUNBOOK = ROOT / "docs" / "operations.md"
SEVERITIES = {"critical", "warning"}

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.yml"))


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for rule in rules_of(path) if "alert" in rule]


def alert_cases() -> list[dict[str, Any]]:
    """Every ``alert_rule_test`` entry of every promtool test file."""
    return [
        case
        for path in TEST_FILES
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to
    hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {github_anchor(h) for h in headings}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool is not installed (./dev.sh setup installs it: Debian package prometheus)"
        )
    return path


def run_promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# -- promtool ------------------------------------------------------------------------------------


def test_there_are_rules_and_tests() -> None:
    assert RULE_FILES and TEST_FILES
    assert (RULES_DIR / "fleetpulse-alerts.yml") in RULE_FILES


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool: str, path: Path) -> None:
    proc = run_promtool(promtool, "check", "rules", str(path), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool: str, path: Path) -> None:
    proc = run_promtool(promtool, "test", "rules", path.name, cwd=path.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unit_tests_catch_a_changed_threshold(promtool: str, tmp_path: Path) -> None:
    """The tests pin the rules down: a freshness threshold moved from 30 s to 60 s fails them."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    for path in RULE_FILES:
        text = path.read_text()
        if path.name == "fleetpulse-alerts.yml":
            assert "fleetpulse_position_age_seconds > 30" in text
            text = text.replace(
                "fleetpulse_position_age_seconds > 30", "fleetpulse_position_age_seconds > 60"
            )
        (tmp_path / "rules" / path.name).write_text(text)
    for path in TEST_FILES:
        shutil.copy(path, tmp_path / "tests" / path.name)
    proc = run_promtool(
        promtool, "test", "rules", *(p.name for p in TEST_FILES), cwd=tmp_path / "tests"
    )
    assert proc.returncode != 0
    assert "FleetpulsePositionsStale" in proc.stdout + proc.stderr


# -- the YAML --------------------------------------------------------------------------------------


def test_unit_tests_load_every_rules_file() -> None:
    loaded = {
        (path.parent / f).resolve()
        for path in TEST_FILES
        for f in yaml.safe_load(path.read_text())["rule_files"]
    }
    assert loaded == {p.resolve() for p in RULE_FILES}


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_is_tested_firing_and_quiet(rule: dict[str, Any]) -> None:
    cases = [c for c in alert_cases() if c["alertname"] == rule["alert"]]
    assert any(c.get("exp_alerts") for c in cases), f"{rule['alert']}: no case where it fires"
    assert any(not c.get("exp_alerts") for c in cases), (
        f"{rule['alert']}: no case where it must stay quiet"
    )


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_severity_annotations_and_a_runbook_section(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert rule.get("labels", {}).get("severity") in SEVERITIES, name
    annotations = rule.get("annotations", {})
    assert annotations.get("summary") and annotations.get("description"), name
    url = annotations.get("runbook_url", "")
    path, _, anchor = url.partition("#")
    assert path == "docs/operations.md", f"{name}: runbook_url {url!r}"
    assert anchor == github_anchor(name), f"{name}: runbook_url {url!r} is not its own section"
    assert anchor in runbook_anchors(), f"{name}: docs/operations.md has no section #{anchor}"


def test_every_runbook_section_of_an_alert_names_a_rule() -> None:
    """No stale runbook entries: each `### Fleetpulse...` heading is a rule that exists."""
    documented = set(re.findall(r"^###\s+(Fleetpulse\w+)\s*$", RUNBOOK.read_text(), re.MULTILINE))
    assert documented == {rule["alert"] for rule in alert_rules()}
