"""Before/after: the tracking job of another git revision against this checkout, same run.

    python -m bench.compare --base HEAD~3 [--pings 200000 --trucks 20000 --repeat 2]
                            [--cluster 2]

An optimisation is judged by the ratio of two runs on the same machine, the same input and
the same minute, so the revisions alternate (base, current, base, current, ...) on one private
Kafka and Redis. The base revision is checked out with ``git worktree`` and run by a shadow
virtualenv: the same interpreter and installed dependencies (symlinked), but fleetpulse's own
packages from the worktree, so the Flink workers import the base code too (the editable install
would otherwise hand them this checkout's). Printed per run: pings/s and CPU µs per ping of
the job's process tree; then the median ratio current/base. With ``--cluster N`` each run is
submitted with `flink run -py` to a fresh standalone cluster of N pinned TaskManagers, whose
Python runs the base's interpreter and code for the base runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from bench.alternate import run_options
from fleetpulse.paths import PROJECT_ROOT

PACKAGES = ("fleetpulse", "flink_jobs", "udfs", "alerting", "ws_gateway", "simulator", "bench")


def checkout(ref: str, where: Path) -> str:
    """A detached worktree of ``ref`` at ``where``; returns the commit."""
    subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "worktree", "add", "--detach", "-f", str(where), ref],
        check=True,
        capture_output=True,
        text=True,
    )
    return subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def base_env(source: Path) -> dict[str, str]:
    """Environment for base runs: fleetpulse from ``source`` even though every child starts
    in this checkout with it on ``PYTHONPATH`` (``PYTHONSAFEPATH``: no current directory)."""
    return {"PYTHONPATH": str(source), "PYTHONSAFEPATH": "1"}


def imported_from(python: str, env: dict[str, str]) -> Path:
    """Where ``python`` finds the job code when started the way the benchmark starts jobs."""
    import os

    out = subprocess.run(
        [python, "-c", "import flink_jobs; print(flink_jobs.__file__)"],
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(out).resolve()


def shadow_venv(source: Path, where: Path) -> Path:
    """A virtualenv sharing this one's dependencies but importing fleetpulse from ``source``.

    Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    theirs = where / "lib" / version / "site-packages"
    for entry in ours.iterdir():
        if entry.name.startswith(("__editable__", "fleetpulse-")) or entry.name in PACKAGES:
            continue
        (theirs / entry.name).symlink_to(entry)
    for package in PACKAGES:
        if (source / package).is_dir():
            (theirs / package).symlink_to(source / package)
    return where / "bin" / "python"


# Where the tracking job's entry point lives, newest layout first: a base revision from before
# the folder per job (2026-12-07) has it at flink_jobs/tracking_job.py.
TRACKING_MODULES = ("flink_jobs.tracking.job", "flink_jobs.tracking_job")


def job_module_of(root: Path, argv: list[str]) -> list[str]:
    """``argv`` (``python -m <tracking module> ...``) with the module ``root`` has."""
    found = next(m for m in TRACKING_MODULES if (root / (m.replace(".", "/") + ".py")).is_file())
    return [found if arg in TRACKING_MODULES else arg for arg in argv]


@click.command()
@click.option("--base", required=True, help="Git revision to compare this checkout against.")
@run_options(pings=200_000, trucks=20_000, repeat_help="Runs of each revision.")
@click.option("--parallelism", default=1, show_default=True)
def main(
    base: str, pings: int, trucks: int, repeat: int, parallelism: int, taskmanagers: int
) -> None:
    """Alternate runs of the base revision and this checkout; print rates and the ratio."""
    from bench.alternate import Variant, alternate, echo_medians, echo_rows, where
    from bench.context import Context, Sizes
    from bench.sections.throughput import tracking_argv
    from bench.support import exit_on_sigterm, running_stack

    exit_on_sigterm()

    tmp = Path(tempfile.mkdtemp(prefix="fleetpulse-compare-"))
    commit = checkout(base, tmp / "base")
    try:
        base_python = shadow_venv(tmp / "base", tmp / "venv")
        env = base_env(tmp / "base")
        found = imported_from(str(base_python), env)
        if not found.is_relative_to((tmp / "base").resolve()):
            raise click.ClickException(f"the base run would import {found}, not the base")
        with running_stack() as stack:
            ctx = Context(stack, tmp / "work", Sizes(partitions=4), None)
            ds = ctx.dataset(trucks, pings)

            def tracking(python: str, root: Path) -> Callable[[], list[str]]:
                """The tracking job as ``root`` has it, run by ``python`` (fresh per run)."""
                return lambda: [
                    python,
                    *job_module_of(root, tracking_argv(ctx, ds, parallelism))[1:],
                ]

            base_root = tmp / "base"
            variants = (
                Variant(f"base {commit}", tracking(str(base_python), base_root), env, base_root),
                Variant("current", tracking(sys.executable, PROJECT_ROOT), root=PROJECT_ROOT),
            )
            rows = alternate(stack, ds, tmp / "work", variants, repeat, taskmanagers)
    finally:
        subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "worktree", "remove", "--force", str(tmp / "base")],
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)
    click.echo(
        f"\n{pings:,} pings / {trucks:,} trucks, tracking job {where(taskmanagers, parallelism)}"
    )
    echo_rows(rows)
    echo_medians(rows)


if __name__ == "__main__":
    main()
