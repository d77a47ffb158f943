"""A pip-installed fleetpulse submits its jobs with nothing to build: the wheel carries the
Flink operator jar, compiled when the wheel was built.

The wheel is built from a copy of this checkout (as `./dev.sh wheel` does) and installed into a
fresh virtual environment whose dependencies come from the test's own environment; the
tracking job is then submitted from that installation with `flink run -py` to a standalone
cluster whose Python runs the installed package, from a directory with no source tree, and
with a JVM cache that holds only the Kafka connector: a compile would leave a jar in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import orjson
import pytest
import redis
from jobs import job_args, produce

from fleetpulse.paths import PROJECT_ROOT
from fleetpulse.services.flink import cancel, pyflink_home, rest_get, submit_argv
from fleetpulse.services.flink_cluster import StandaloneCluster
from fleetpulse.waiting import free_port, wait_until
from flink_jobs.runtime.jars import jvm_dir
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration

JAR_IN_WHEEL = "flink_jobs/runtime/lib/fleetpulse-operators.jar"


def _copy_source_tree(dest: Path) -> None:
    """What a wheel is built from: the packages pyproject names, the Java sources, the
    top-level build files; never caches or earlier build output."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", "*.egg-info")
    for name in (*sorted(packages), "jvm/src"):
        shutil.copytree(PROJECT_ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(PROJECT_ROOT / name, dest / name)


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    _copy_source_tree(source)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(dist), str(source)],
        env={**os.environ, "FLEETPULSE_BUILD_OPERATORS": "require"},
        check=True,
        timeout=600,
    )
    (wheel,) = dist.glob("fleetpulse-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> tuple[Path, Path]:
    """A new environment with the wheel installed; its dependencies are this environment's
    site-packages, added after its own (so the wheel's fleetpulse is the one imported)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
        + ["--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "zz-test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python, site


def test_a_job_submitted_from_an_installed_wheel_needs_no_build(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as whl:
        assert JAR_IN_WHEEL in whl.namelist()
        assert not [n for n in whl.namelist() if n.endswith(".java")]
        (tmp_path / "carried.jar").write_bytes(whl.read(JAR_IN_WHEEL))
    with zipfile.ZipFile(tmp_path / "carried.jar") as jar:
        assert "io/fleetpulse/flink/ShardBundler.class" in jar.namelist()

    python, site = _fresh_venv(tmp_path, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FLEETPULSE_OPERATORS_JAR")
    }
    imported = subprocess.run(
        [str(python), "-c", "import flink_jobs.runtime.operators_jar as o; print(o.__file__)"],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(imported).is_relative_to(site), imported

    # A JVM cache with the Kafka connector only: a compile would write operators/ into it.
    cache = tmp_path / "jvm"
    cache.mkdir()
    (cache / "flink").symlink_to(jvm_dir() / "flink")
    env["FLEETPULSE_JVM_DIR"] = str(cache)
    chosen = subprocess.run(
        [
            str(python),
            "-c",
            "from flink_jobs.runtime.operators_jar import operators_jar as o; print(o())",
        ],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(chosen) == site / JAR_IN_WHEEL

    cluster = StandaloneCluster(
        tmp_path / "flink",
        rest_port=free_port(),
        rpc_port=free_port(),
        python=str(python),
        pythonpath=[str(site), sysconfig.get_path("purelib")],
    )
    cluster.start()
    try:
        argv = submit_argv(
            f"127.0.0.1:{cluster.rest_port}",
            "flink_jobs.tracking.job",
            job_args(
                "flink_jobs.tracking.job",
                kafka_bootstrap,
                redis_url,
                unique_topics,
                "--group-id",
                "it-installed-wheel",
                "--bundle-shards",
                "2",
            ),
            python=str(python),
            root=site,
        )
        submitted = subprocess.run(
            argv,
            cwd=elsewhere,
            env={**env, "FLINK_HOME": str(pyflink_home()), "FLINK_CONF_DIR": str(cluster.conf_dir)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = submitted.stdout + submitted.stderr
        job_ids = [line.rsplit(" ", 1)[-1] for line in out.splitlines() if "JobID" in line]
        assert job_ids, out[-4000:]
        job_id = job_ids[0].strip()

        wait_until(
            lambda: all(
                v["status"] == "RUNNING"
                for v in rest_get(cluster.rest_url, f"/jobs/{job_id}")["vertices"]
            ),
            120,
            "every task of the job submitted from the wheel RUNNING",
        )
        vertices = rest_get(cluster.rest_url, f"/jobs/{job_id}")["vertices"]
        assert any("bundle-by-shard" in v["name"] for v in vertices)

        ts = int(time.time() * 1000) - 60_000
        ping = {"truck_id": "TRW", "ts": ts, "lat": 39.74, "lng": -104.99, "speed_kph": 80}
        produce(kafka_bootstrap, unique_topics.gps, [(b"TRW", orjson.dumps(ping))])
        wait_until(
            lambda: redis_client.hget("truck:TRW", "ts_ms") == str(ts).encode(),
            120,
            "the installed job's position in Redis",
        )
        assert not (cache / "operators").exists(), "the operator jar was compiled, not carried"
        cancel(cluster.rest_url, job_id)
    finally:
        cluster.stop()
