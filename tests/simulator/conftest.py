"""Shared simulated runs (generated once per session: generation is the slow part).

This folder is named like the package it tests and has no ``__init__.py``; with ``tests/`` on
``sys.path`` ``import simulator`` could find ``tests/simulator`` as a namespace package, so the
repository root goes first (as in tests/alerting). Helpers live in ``simtest_support``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if getattr(sys.modules.get("simulator"), "__file__", "") is None:  # a namespace got imported
    for name in [m for m in sys.modules if m == "simulator" or m.startswith("simulator.")]:
        del sys.modules[name]
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from simtest_support import Run, make_run  # noqa: E402

from simulator.config import Faults  # noqa: E402


@pytest.fixture(scope="session")
def clean_run() -> Run:
    return make_run()


@pytest.fixture(scope="session")
def faulty_run() -> Run:
    return make_run(
        hours=12,
        trucks=20,
        seed=5,
        faults=Faults(
            out_of_order_share=0.05,
            out_of_order_max_s=8.0,
            late_share=0.01,
            late_min_s=30.0,
            late_max_s=120.0,
            duplicate_share=0.05,
            malformed_share=0.04,
            skew_share=0.5,
            skew_max_s=4.0,
        ),
    )
