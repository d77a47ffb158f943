"""One dispatcher per state directory (issue 30): the second lock is refused naming the holder;
the lock goes with its holder, also when that process is killed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alerting import AlertingError
from alerting.instance_lock import InstanceLock

pytestmark = pytest.mark.unit


def test_second_lock_is_refused_naming_the_holder_and_released_on_release(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path).acquire()
    with pytest.raises(AlertingError) as err:
        InstanceLock(tmp_path).acquire()
    msg = str(err.value)
    assert f"pid {os.getpid()}" in msg and str(tmp_path) in msg and "--state-dir" in msg
    first.release()
    InstanceLock(tmp_path).acquire().release()


def test_lock_of_a_killed_process_is_free(tmp_path: Path) -> None:
    code = (
        "import sys, time; from alerting.instance_lock import InstanceLock; "
        f"InstanceLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        with pytest.raises(AlertingError, match=f"pid {p.pid}"):
            InstanceLock(tmp_path).acquire()
    finally:
        p.kill()
        p.wait()
    InstanceLock(tmp_path).acquire().release()  # no stale lock after SIGKILL
