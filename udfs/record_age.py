"""How old a record may be, in the reader's own event time (contract: ``STALE_TIMESTAMP``).

A reader's event time is the newest ``ts`` it has accepted, never the wall clock, so a backfill
of old data is judged against itself: only a record far behind what the same reader already
accepted is refused (raise ``--max-record-age-s`` to let older records through). Without such a
bound, one record with a ``ts`` decades old creates a ghost truck that raises an offline alert
and state that nothing ever expires.
"""

from __future__ import annotations

from udfs.models import Reason, Rejection

DAY_S = 24 * 3600
DEFAULT_MAX_PING_AGE_S = DAY_S  # the tracking job's --max-record-age-s
DEFAULT_MAX_SCAN_AGE_S = 7 * DAY_S  # the delay job's --max-record-age-s


def stale(ts: int, newest_ms: int | None, max_age_ms: int) -> Rejection | None:
    """The rejection of a record of time ``ts`` when the reader has accepted one of
    ``newest_ms`` (None: nothing yet) and records may lag by ``max_age_ms``; None if it may
    pass."""
    if newest_ms is None or ts >= newest_ms - max_age_ms:
        return None
    return Rejection(
        Reason.STALE_TIMESTAMP,
        f"ts is {(newest_ms - ts) / 3_600_000:.1f} h older than the newest accepted "
        f"(max {max_age_ms / 3_600_000:.0f} h)",
    )
