"""Geo lookups per GPS ping, cold and hot cells, against a base revision: µs per point.

    python -m bench.geo_cells [--base main] [--points 20000] [--batch 50] [--repeat 3]

``--points`` random points over the continental US (lat 25..49, lng -124..-67) go through
fresh indexes, so most land in a 0.1-degree cell not seen before (a cold cell), then through
the same indexes again (hot cells). Rows: ``RegionIndex.region_of`` one point at a time;
``RegionIndex.warm`` per ``--batch`` points then ``region_of`` on each (as the bundled tracking
job calls them; only where the revision has ``warm``); ``GeofenceIndex.containing`` on the hubs
file. Each prints process CPU per point, best of ``--repeat``, for this checkout and for
``udfs/geo.py`` of ``--base`` (read with ``git show``, loaded as a separate module), so both
run in the same minute; the answers of the two are checked equal. A base without ``warm`` is
compared on that row with its ``region_of`` cold.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import click

US_BOX = (25.0, 49.0, -124.0, -67.0)  # lat min, lat max, lng min, lng max


def load_base(rev: str) -> ModuleType:
    """``udfs/geo.py`` as of ``rev``, imported under another name beside this checkout's (its
    data files are this checkout's)."""
    import udfs

    source = subprocess.run(
        ["git", "show", f"{rev}:udfs/geo.py"], check=True, capture_output=True, text=True
    ).stdout
    name = "_geo_base"
    module = ModuleType(name)
    module.__file__ = str(Path(udfs.__file__).with_name("geo.py"))
    sys.modules[name] = module  # dataclasses look their module up while building the class
    exec(compile(source, f"{rev}:udfs/geo.py", "exec"), module.__dict__)
    return module


def points(n: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    lat0, lat1, lng0, lng1 = US_BOX
    return [(rng.uniform(lat0, lat1), rng.uniform(lng0, lng1)) for _ in range(n)]


def per_point(
    make: Callable[[], Any], run: Callable[[Any], Any], n: int, repeat: int
) -> tuple[float, Any, Any]:
    """Best-of-``repeat`` process CPU of ``run(make())`` in µs per point (``make`` untimed),
    with the last index and answers."""
    best, index, answers = float("inf"), None, None
    for _ in range(repeat):
        index = make()
        t0 = time.process_time()
        answers = run(index)
        best = min(best, time.process_time() - t0)
    return best / n * 1e6, index, answers


def bench_module(
    geo: ModuleType, shapes: dict[str, Any], pts: list[tuple[float, float]], batch: int, repeat: int
) -> tuple[dict[str, float], list[Any]]:
    """One revision's rows, and its answers (regions, then geofence ids) for the check."""
    n, rows = len(pts), dict[str, float]()

    def regions(idx: Any) -> list[str]:
        return [idx.region_of(lat, lng) for lat, lng in pts]

    def warmed_regions(idx: Any) -> list[str]:
        out = []
        for i in range(0, n, batch):
            chunk = pts[i : i + batch]
            idx.warm(chunk)
            out += [idx.region_of(lat, lng) for lat, lng in chunk]
        return out

    def fences(idx: Any) -> list[list[str]]:
        return [idx.containing(lat, lng) for lat, lng in pts]

    def new_regions() -> Any:
        return geo.RegionIndex(shapes)

    def new_fences() -> Any:
        return geo.GeofenceIndex.from_file(geo.HUBS_FILE)

    rows["region_of cold"], idx, found = per_point(new_regions, regions, n, repeat)
    rows["region_of hot"] = per_point(lambda: idx, regions, n, repeat)[0]
    answers: list[Any] = list(found)
    if hasattr(geo.RegionIndex, "warm"):
        rows[f"warm({batch})+region_of cold"], _, warmed = per_point(
            new_regions, warmed_regions, n, repeat
        )
        assert warmed == found, "warm changed an answer"
    rows["containing cold"], fidx, found = per_point(new_fences, fences, n, repeat)
    rows["containing hot"] = per_point(lambda: fidx, fences, n, repeat)[0]
    return rows, answers + found


@click.command(help=__doc__)
@click.option("--base", default="main", show_default=True, help="revision to compare with")
@click.option("--points", "n", default=20_000, show_default=True)
@click.option("--batch", default=50, show_default=True)
@click.option("--repeat", default=3, show_default=True)
@click.option("--seed", default=1, show_default=True)
def main(base: str, n: int, batch: int, repeat: int, seed: int) -> None:
    from udfs import geo

    old = load_base(base)
    shapes = geo.load_region_shapes()
    pts = points(n, seed)
    before, old_answers = bench_module(old, shapes, pts, batch, repeat)
    after, new_answers = bench_module(geo, shapes, pts, batch, repeat)
    print(f"{n} points, µs per point, best of {repeat}; same answers: {old_answers == new_answers}")
    print(f"{'':28s} {base:>10s} {'this':>10s} {'ratio':>8s}")
    for row, value in after.items():
        # A base without warm has only the one-by-one cold lookups to compare with.
        was = before.get(row) or before["region_of cold"]
        print(f"{row:28s} {was:10.2f} {value:10.2f} {was / value:7.2f}x")


if __name__ == "__main__":
    main()
