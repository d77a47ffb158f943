"""Delay severity of a late shipment (contract bands) and its PagerDuty severity.

Late by up to 30 min -> 1; up to 2 h -> 2; up to 6 h -> 3; up to 24 h -> 4; more -> 5.
"Up to" is inclusive, so a shipment exactly 30 min late is still severity 1 and becomes 2 one
millisecond later; :func:`next_escalation_ms` gives that instant so a timer can fire on it.
"""

from __future__ import annotations

# Upper bounds (inclusive, seconds of lateness) of severities 1..4; above the last -> 5.
BANDS_S: tuple[int, ...] = (30 * 60, 2 * 3600, 6 * 3600, 24 * 3600)
MAX_SEVERITY = len(BANDS_S) + 1

_PAGERDUTY = {1: "info", 2: "warning", 3: "error", 4: "critical", 5: "critical"}


def delay_severity(late_by_ms: int, bands_s: tuple[int, ...] = BANDS_S) -> int:
    """Severity 1..5 of a shipment late by ``late_by_ms``; 0 when it is not late (<= 0)."""
    if late_by_ms <= 0:
        return 0
    for i, bound_s in enumerate(bands_s):
        if late_by_ms <= bound_s * 1000:
            return i + 1
    return len(bands_s) + 1


def next_escalation_ms(late_by_ms: int, bands_s: tuple[int, ...] = BANDS_S) -> int | None:
    """The lateness (ms) at which the severity next rises, or None at the top band.

    Not late yet (<= 0): 1, the first millisecond of lateness.
    """
    if late_by_ms <= 0:
        return 1
    for bound_s in bands_s:
        if late_by_ms <= bound_s * 1000:
            return bound_s * 1000 + 1
    return None


def pagerduty_severity(severity: int) -> str:
    """Contract mapping of delay severity to the alert's ``payload.severity``."""
    if severity < 1:
        return "info"
    return _PAGERDUTY[min(severity, MAX_SEVERITY)]


def format_duration(ms: int) -> str:
    """``2h10m`` style, for alert summaries."""
    minutes = max(0, ms) // 60_000
    hours, minutes = divmod(minutes, 60)
    if hours >= 24:
        days, hours = divmod(hours, 24)
        return f"{days}d{hours}h{minutes:02d}m"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"
