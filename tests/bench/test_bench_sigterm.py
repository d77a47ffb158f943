"""A benchmark stopped with SIGTERM (a CI timeout, ``kill``) stops what it started."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = """
import signal, sys
from bench.support import exit_on_sigterm
exit_on_sigterm()
try:
    print("ready", flush=True)
    signal.pause()  # until the test's SIGTERM
finally:
    open(sys.argv[1], "w").write("stopped its services")
"""


def test_sigterm_unwinds_so_finally_blocks_stop_the_services(tmp_path: Path) -> None:
    marker = tmp_path / "cleanup"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(marker)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert marker.read_text() == "stopped its services"
