"""When a key re-asserts what it reported (issue 29's refresh), spread over the period.

Each key refreshes on its own processing-time timer, every ``period_ms``, at a phase taken from
a CRC of the key: the keys of an operator spread evenly over the period instead of refreshing
together, and the phase is the same in every process, so a chain registered again after a
restore merges with the restored timer (Flink keeps one timer per key and time).
"""

from __future__ import annotations

import zlib

from flink_jobs.runtime.metrics import Series

# What a key no longer re-asserts is dropped after this many refresh periods: the `delays`
# sweep, and the dispatcher's resolve_timeout by default (3 x the default 300 s = 15 min).
STALE_REFRESHES = 3


def refresh_slot(key: str, now_ms: int, period_ms: int) -> int:
    """The key's next refresh time after ``now_ms``."""
    phase = zlib.crc32(key.encode()) % period_ms
    return now_ms - (now_ms - phase) % period_ms + period_ms


def reassert_series(alert_class: str) -> Series:
    """Triggers an operator sent again because their alert is still open (not new alerts)."""
    return ("reasserted_alerts", (("class", alert_class),))
