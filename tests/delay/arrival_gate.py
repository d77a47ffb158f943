"""Test-only arrival order for MiniCluster jobs: hold one source's records until another has
passed a number of records, so "the pings are all read before the scans" is certain rather
than a race between two sources.

Thread-mode Python operators share one embedded interpreter in the MiniCluster JVM, so this
module's counters are shared by the operators of a job. Runs are told apart by a token.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_lock = threading.Lock()
_passed: dict[str, int] = {}


def count(token: str, value: Any) -> Any:
    """Map function: count a record of the leading source."""
    with _lock:
        _passed[token] = _passed.get(token, 0) + 1
    return value


def wait_for(token: str, n: int, value: Any, timeout_s: float = 120.0) -> Any:
    """Map function: pass a record of the trailing source once ``n`` records have been
    counted (polled, with a deadline; the job fails rather than hang)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with _lock:
            if _passed.get(token, 0) >= n:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"arrival gate {token}: {_passed.get(token, 0)} of {n} passed")
        time.sleep(0.02)
