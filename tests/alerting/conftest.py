"""Fixtures of the alerting tests: a real local HTTP receiver.

This folder is named like the package it tests and has no ``__init__.py``; with ``tests/`` on
``sys.path`` (pytest's rootdir insertion) ``import alerting`` would find ``tests/alerting`` as a
namespace package before the editable install's finder runs. Putting the repository root first
makes ``alerting`` the real package.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if getattr(sys.modules.get("alerting"), "__file__", "") is None:  # a namespace got imported
    for name in [m for m in sys.modules if m == "alerting" or m.startswith("alerting.")]:
        del sys.modules[name]
sys.path.insert(0, str(Path(__file__).parent))

from alerting_receiver import Receiver  # noqa: E402


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()
