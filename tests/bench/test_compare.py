"""bench.compare runs the base revision with the same dependencies but the base's own code."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.compare import base_env, imported_from, shadow_venv

pytestmark = pytest.mark.unit


def test_shadow_venv_imports_fleetpulse_from_the_base_and_the_rest_from_here(
    tmp_path: Path,
) -> None:
    base = tmp_path / "base"
    (base / "udfs").mkdir(parents=True)
    (base / "udfs" / "__init__.py").write_text("REVISION = 'base'\n")
    (base / "flink_jobs").mkdir()
    (base / "flink_jobs" / "__init__.py").write_text("")
    python = shadow_venv(base, tmp_path / "venv")
    # Without a PYTHONPATH that an earlier test's Flink job exported into this process.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(python), "-c", "import udfs, orjson, pyflink; print(udfs.REVISION)"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["base"]
    # Started like a benchmark child (in this checkout, which is on PYTHONPATH too):
    assert imported_from(str(python), base_env(base)).is_relative_to(base.resolve())
    assert not imported_from(str(python), {}).is_relative_to(base.resolve())


def test_a_base_cluster_runs_the_bases_interpreter_and_code(tmp_path: Path) -> None:
    """bench.compare --cluster: the TaskManagers' Python and the `flink run` client of a base
    run import the base's job code, not this checkout's."""
    from fleetpulse.services.flink import submit_argv
    from fleetpulse.services.flink_cluster import StandaloneCluster

    base = tmp_path / "base"
    (base / "flink_jobs").mkdir(parents=True)
    (base / "flink_jobs" / "__init__.py").write_text("REVISION = 'base'\n")
    (base / "flink_jobs" / "tracking").mkdir()
    (base / "flink_jobs" / "tracking" / "job.py").write_text("")
    python = str(shadow_venv(base, tmp_path / "venv"))
    cluster = StandaloneCluster(
        tmp_path / "cluster", rest_port=1, rpc_port=2, python=python, project_root=base
    )
    config = cluster._config()
    assert config["python.executable"] == python
    # the embedded interpreter of a TaskManager: its executable, the configured path
    tm_env = {**os.environ, "PYTHONPATH": str(config["python.pythonpath"])}
    out = subprocess.run(
        [python, "-c", "import flink_jobs; print(flink_jobs.REVISION)"],
        cwd=tmp_path,
        env=tm_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["base"]
    assert cluster.env()["PYTHONPATH"] == config["python.pythonpath"]
    argv = submit_argv("127.0.0.1:1", "flink_jobs.tracking.job", ["--x"], python=python, root=base)
    assert argv[argv.index("-py") + 1] == str(base / "flink_jobs" / "tracking" / "job.py")
    assert argv[argv.index("-pyexec") + 1] == argv[argv.index("-pyclientexec") + 1] == python


def test_a_base_from_before_the_job_folders_runs_its_own_entry_point(tmp_path: Path) -> None:
    from bench.compare import job_module_of

    argv = ["python", "-m", "flink_jobs.tracking.job", "--bounded"]
    (tmp_path / "flink_jobs").mkdir()
    (tmp_path / "flink_jobs" / "tracking_job.py").write_text("")
    assert job_module_of(tmp_path, argv) == ["python", "-m", "flink_jobs.tracking_job", "--bounded"]
    (tmp_path / "flink_jobs" / "tracking").mkdir()
    (tmp_path / "flink_jobs" / "tracking" / "job.py").write_text("")
    assert job_module_of(tmp_path, argv) == argv
