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
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import click

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
@click.option("--pings", default=200_000, show_default=True)
@click.option("--trucks", default=20_000, show_default=True)
@click.option("--repeat", default=2, show_default=True, help="Runs of each revision.")
@click.option("--parallelism", default=1, show_default=True)
@click.option(
    "--cluster",
    "taskmanagers",
    type=int,
    default=0,
    help="Submit each run with `flink run -py` to a fresh standalone cluster of this "
    "many pinned TaskManagers (one slot each), at that parallelism.",
)
def main(
    base: str, pings: int, trucks: int, repeat: int, parallelism: int, taskmanagers: int
) -> None:
    """Alternate runs of the base revision and this checkout; print rates and the ratio."""
    from bench.context import Context, Sizes
    from bench.runs import run_consumer
    from bench.sections.throughput import run_timeout_s, tracking_argv
    from bench.support import exit_on_sigterm, log, running_stack
    from bench.transport import on_cluster

    exit_on_sigterm()

    tmp = Path(tempfile.mkdtemp(prefix="fleetpulse-compare-"))
    commit = checkout(base, tmp / "base")
    rows: list[dict[str, Any]] = []
    try:
        base_python = shadow_venv(tmp / "base", tmp / "venv")
        env = base_env(tmp / "base")
        found = imported_from(str(base_python), env)
        if not found.is_relative_to((tmp / "base").resolve()):
            raise click.ClickException(f"the base run would import {found}, not the base")
        with running_stack() as stack:
            ctx = Context(stack, tmp / "work", Sizes(partitions=4), None)
            ds = ctx.dataset(trucks, pings)
            for i in range(repeat):
                for label, python, extra, root in (
                    (f"base {commit}", str(base_python), env, tmp / "base"),
                    ("current", sys.executable, {}, PROJECT_ROOT),
                ):
                    argv = job_module_of(root, tracking_argv(ctx, ds, parallelism))
                    argv[0] = python
                    log(f"run {i + 1}/{repeat}: {label}")
                    name = f"{label} #{i + 1}"
                    if taskmanagers:
                        row = on_cluster(
                            stack,
                            ds,
                            name,
                            argv,
                            tmp / "work",
                            taskmanagers,
                            None,
                            root=root,
                            env=extra,
                        )
                    else:
                        row = run_consumer(
                            stack, ds, name, argv, tmp / "work", run_timeout_s(ds), env=extra
                        )
                    rows.append({**row, "label": label})
    finally:
        subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "worktree", "remove", "--force", str(tmp / "base")],
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)
    where = (
        f"flink run -py on {taskmanagers} pinned TaskManagers, p={taskmanagers}"
        if taskmanagers
        else f"embedded, p={parallelism}"
    )
    click.echo(f"\n{pings:,} pings / {trucks:,} trucks, tracking job {where}")
    click.echo("| run | status | pings/s | CPU µs/ping |\n|---|---|---|---|")
    for r in rows:
        click.echo(
            f"| {r['name']} | {r['status']} | {r.get('rate', '-'):,} | "
            f"{r.get('cpu_us_per_ping', '-')} |"
        )
    rates = {
        label: [r["rate"] for r in rows if r["label"] == label and r["status"] == "ok"]
        for label in dict.fromkeys(r["label"] for r in rows)
    }
    base_rates, current_rates = list(rates.values())
    if base_rates and current_rates:
        ratio = statistics.median(current_rates) / statistics.median(base_rates)
        click.echo(
            f"\nmedian rate: base {statistics.median(base_rates):,.0f}/s, current "
            f"{statistics.median(current_rates):,.0f}/s, ratio {ratio:.2f}x"
        )


if __name__ == "__main__":
    main()
