"""bench.compare runs the base revision with the same dependencies but the base's own code."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.compare import base_env, imported_from, shadow_venv

pytestmark = pytest.mark.unit


def test_shadow_venv_imports_fleetpulse_from_the_base_and_the_rest_from_here(tmp_path: Path
                                                                             ) -> None:
    base = tmp_path / "base"
    (base / "udfs").mkdir(parents=True)
    (base / "udfs" / "__init__.py").write_text("REVISION = 'base'\n")
    (base / "flink_jobs").mkdir()
    (base / "flink_jobs" / "__init__.py").write_text("")
    python = shadow_venv(base, tmp_path / "venv")
    # Without a PYTHONPATH that an earlier test's Flink job exported into this process.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(python), "-c", "import udfs, orjson, pyflink; "
                          "print(udfs.REVISION)"], cwd=tmp_path, env=clean,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["base"]
    # Started like a benchmark child (in this checkout, which is on PYTHONPATH too):
    assert imported_from(str(python), base_env(base)).is_relative_to(base.resolve())
    assert not imported_from(str(python), {}).is_relative_to(base.resolve())
