"""Opt-in cProfile of a Python operator inside Flink, for finding what a job spends on.

Set ``FLEETPULSE_PYPROFILE_DIR`` in the job's environment: each instrumented operator
profiles its own calls from ``open`` to ``close`` (the end of a bounded run) and writes
``<operator>-<pid>-<n>.prof`` there, readable with ``python -m pstats``. Unset, it costs
nothing. Thread mode runs the operator's calls on the task thread that opened it, which is
the thread cProfile watches.
"""

from __future__ import annotations

import cProfile
import itertools
import os
from pathlib import Path

PROFILE_DIR_ENV = "FLEETPULSE_PYPROFILE_DIR"
_sequence = itertools.count()


def start_profiler() -> cProfile.Profile | None:
    if not os.environ.get(PROFILE_DIR_ENV):
        return None
    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def stop_profiler(profiler: cProfile.Profile | None, operator: str) -> Path | None:
    if profiler is None:
        return None
    profiler.disable()
    out = Path(os.environ[PROFILE_DIR_ENV]) / f"{operator}-{os.getpid()}-{next(_sequence)}.prof"
    out.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(out)
    return out
