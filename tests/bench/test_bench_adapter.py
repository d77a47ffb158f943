"""bench.adapter measures the code of the tree it is given, not whatever is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_a_measurement_runs_the_given_trees_code_and_prints_a_rate() -> None:
    from bench.adapter import run_measure

    assert run_measure(ROOT, trucks=200, rounds=2, repeat=1) > 0


def test_a_tree_whose_code_is_not_imported_is_refused(tmp_path: Path) -> None:
    """An empty directory holds no flink_jobs: the checkout's would be imported instead."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.adapter",
            "--measure",
            str(tmp_path),
            "--trucks",
            "10",
            "--rounds",
            "1",
            "--repeat",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "not the code under" in run.stderr
