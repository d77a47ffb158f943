"""Running the Flink jobs: embedded (a MiniCluster in the job's own process) or submitted to a
running cluster with `flink run -py`, using the `flink` launcher inside the apache-flink wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyflink

from fleetpulse import PlatformError
from fleetpulse.paths import PROJECT_ROOT


def pyflink_home() -> Path:
    return Path(pyflink.__file__).resolve().parent


def flink_cli() -> Path:
    return pyflink_home() / "bin" / "flink"


def job_module_path(module: str, root: Path = PROJECT_ROOT) -> Path:
    return root / (module.replace(".", "/") + ".py")


def embedded_job_argv(module: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", module, *args]


def submit_argv(
    flink_url: str,
    module: str,
    args: list[str],
    detached: bool = True,
    python: str = sys.executable,
    root: Path = PROJECT_ROOT,
) -> list[str]:
    """`flink run -py` of a job module against the cluster at ``flink_url`` (host:port); the
    module's file and the interpreter are this checkout's unless ``root`` and ``python`` say
    otherwise (a benchmark of another revision)."""
    target = flink_url.removeprefix("http://").removeprefix("https://").rstrip("/")
    argv = [str(flink_cli()), "run", "-m", target]
    if detached:
        argv.append("-d")
    argv += [
        "-py",
        str(job_module_path(module, root)),
        "-pyexec",
        python,
        "-pyclientexec",
        python,
        *args,
    ]
    return argv


def flink_env(conf_dir: Path | None = None) -> dict[str, str]:
    """The `flink` launcher's environment; ``conf_dir``: the configuration the client reads
    (a cluster's, whose defaults a submitted job then takes), else the wheel's."""
    env = dict(os.environ)
    env.setdefault("FLINK_HOME", str(pyflink_home()))
    if conf_dir is not None:
        env["FLINK_CONF_DIR"] = str(conf_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def submit(
    flink_url: str,
    module: str,
    args: list[str],
    timeout_s: float = 300,
    conf_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Submit detached; returns the job id `flink run` printed. ``env``: variables for the job's
    Python driver, which `flink run -py` runs here (how secrets such as FLEETPULSE_REDIS_URL
    reach the job without appearing on a command line)."""
    proc = subprocess.run(
        submit_argv(flink_url, module, args),
        env={**flink_env(conf_dir), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    out = proc.stdout + proc.stderr
    for line in out.splitlines():
        if "JobID" in line or "Job has been submitted with JobID" in line:
            return line.rsplit(" ", 1)[-1].strip()
    raise PlatformError(f"flink run of {module} failed (exit {proc.returncode}):\n{out[-6000:]}")


def rest_get(base_url: str, path: str, timeout_s: float = 3.0) -> Any:
    with urllib.request.urlopen(base_url.rstrip("/") + path, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def jobs_overview(base_url: str) -> list[dict[str, Any]]:
    return list(rest_get(base_url, "/jobs/overview").get("jobs", []))


def cancel(base_url: str, job_id: str) -> None:
    req = urllib.request.Request(
        f"{base_url.rstrip('/')}/jobs/{job_id}?mode=cancel", method="PATCH"
    )
    urllib.request.urlopen(req, timeout=10).read()
