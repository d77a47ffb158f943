"""The bundled truck function's Python path alone, without Flink: CPU µs per ping, against a
base revision.

    python -m bench.adapter [--base HEAD~1] [--trucks 20000] [--rounds 6] [--repeat 3]

Whole-job A/Bs on this machine move by up to 20 % between runs of the same code, too much to
see a change of a few per cent in the Python the job runs per ping. This runs
``TruckFunction.process_element`` in one process on the unit tests' fakes of PyFlink's
context and state (``tests/unit/flink_fakes.py``): ``--trucks`` trucks spread over the US,
``--rounds`` pings each 5 s apart, bundled by shard as the JVM bundler does, the watermark 10 s
behind each round (so each ping detects the one before), positions written nowhere, region
cells classified before the timing. It prints process CPU per ping, best of ``--repeat``. With
``--base``, the base revision (checked out in a temporary git worktree) and this checkout
alternate in subprocesses, twice each, and the ratio of the medians is printed.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent
SHARDS = 32


def measure(root: Path, trucks: int, rounds: int, repeat: int) -> float:
    """Best CPU µs per ping of the function from the code under ``root``."""
    sys.path.insert(0, str(root))
    import random

    import orjson

    import flink_jobs.tracking.truck_function as module
    from flink_jobs.tracking.bundling import encode_bundle
    from flink_jobs.tracking.shards import java_shard
    from flink_jobs.tracking.truck_function import TruckFunction
    from tests.unit.flink_fakes import FakeContext, FakeRuntime
    from udfs.geo import GeofenceIndex, default_regions
    from udfs.truck_state import TrackingConfig

    if not Path(module.__file__).resolve().is_relative_to(root.resolve()):
        raise RuntimeError(f"imported {module.__file__}, not the code under {root}")
    try:
        from flink_jobs.tracking.settings import TrackingSettings as Settings
    except ImportError:  # a base revision from before the settings per job
        from flink_jobs.runtime.settings import JobSettings as Settings  # type: ignore[assignment]

    class Unwritten(TruckFunction):  # type: ignore[misc]
        def open_position_writer(self) -> Any:
            return lambda batch: None

    rnd = random.Random(7)
    fleet = [(f"T{i:06d}", 30 + rnd.random() * 15, -120 + rnd.random() * 40) for i in range(trucks)]
    t0 = int(time.time() * 1000) - 3600_000
    feed = []
    for r in range(rounds):
        by_shard: dict[int, list[tuple[int, int, bytes | None]]] = {}
        for tid, lat, lng in fleet:
            value = orjson.dumps(
                {
                    "truck_id": tid,
                    "ts": t0 + r * 5000,
                    "lat": lat + r * 0.001,
                    "lng": lng,
                    "speed_kph": 50.0,
                    "heading": 90.0,
                }
            )
            by_shard.setdefault(java_shard(tid, SHARDS), []).append((0, r, value))
        feed.append(
            (
                t0 + r * 5000 - 10_000,
                [(shard, encode_bundle(records)) for shard, records in by_shard.items()],
            )
        )
    best = float("inf")
    for _ in range(repeat):
        fn = Unwritten(
            Settings(bundle_shards=SHARDS, bounded=True),
            TrackingConfig(),
            default_regions(),
            GeofenceIndex.from_file(),
        )
        fn.open(FakeRuntime())
        fn.regions.warm([(lat + r * 0.001, lng) for _, lat, lng in fleet for r in range(rounds)])
        start = time.process_time()
        for watermark, bundles in feed:
            for shard, bundle in bundles:
                for _ in fn.process_element(bundle, FakeContext(key=shard, watermark=watermark)):
                    pass
        best = min(best, (time.process_time() - start) / (trucks * rounds) * 1e6)
        writes = getattr(fn, "writes", None)  # revisions before the background writer lack it
        if writes is not None:
            writes.close()
    return best


def run_measure(root: Path, trucks: int, rounds: int, repeat: int) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.adapter",
            "--measure",
            str(root),
            "--trucks",
            str(trucks),
            "--rounds",
            str(rounds),
            "--repeat",
            str(repeat),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.split()[-2])


@click.command()
@click.option("--base", default=None, help="Git revision to compare this checkout against.")
@click.option("--trucks", default=20_000, show_default=True)
@click.option("--rounds", default=6, show_default=True)
@click.option("--repeat", default=3, show_default=True, help="Timings per run (the best counts).")
@click.option(
    "--measure", "measure_root", type=click.Path(path_type=Path), default=None, hidden=True
)
def main(
    base: str | None, trucks: int, rounds: int, repeat: int, measure_root: Path | None
) -> None:
    """Print CPU µs per ping of the bundled truck function's Python path."""
    if measure_root is not None:
        print(f"{measure_root}: {measure(measure_root, trucks, rounds, repeat):.2f} µs/ping")
        return
    if base is None:
        print(f"this checkout: {run_measure(ROOT, trucks, rounds, repeat):.2f} µs/ping")
        return
    with tempfile.TemporaryDirectory(prefix="fleetpulse-adapter-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(tree), base], cwd=ROOT, check=True
        )
        try:
            times: dict[str, list[float]] = {base: [], "this": []}
            for _ in range(2):
                times[base].append(run_measure(tree, trucks, rounds, repeat))
                times["this"].append(run_measure(ROOT, trucks, rounds, repeat))
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
            )
    for name, values in times.items():
        print(f"{name}: {', '.join(f'{v:.2f}' for v in values)} µs/ping")
    ratio = statistics.median(times[base]) / statistics.median(times["this"])
    print(f"{trucks:,} trucks x {rounds} pings: this checkout is {ratio:.2f}x {base}'s speed")


if __name__ == "__main__":
    main()
