"""Rate-limited log lines while a receiver fails (pure; the clock is passed in).

Retries and an open circuit breaker are silent by design, so a receiver that never answers
would otherwise leave no trace in the dispatcher's log while its alerts pile up in the outbox
(issue 30). :class:`FailureNotice` turns each attempt's outcome into at most one warning per
``interval_ms`` per receiver, naming it, the reason, where it was sent (host and port only: a
webhook URL's path or query may hold a token) and how many alerts wait; and one line when it
delivers again.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_INTERVAL_MS = 60_000


def endpoint_address(url: str) -> str:
    """``host:port`` of a receiver URL (the scheme's port when none is given), never its path,
    query or credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


@dataclass
class FailureNotice:
    """Tracks one receiver's failing streak and says when to log about it."""

    receiver: str
    url: str
    interval_ms: int = DEFAULT_INTERVAL_MS
    failures: int = 0  # attempts failed since the last success
    last_warned_ms: int | None = None
    warned: bool = False  # a warning was logged during the current streak

    def failed(self, reason: str, now_ms: int, queued: int, circuit: str) -> str | None:
        """An attempt failed: the warning to log now, or None (one logged recently)."""
        self.failures += 1
        if self.last_warned_ms is not None and now_ms - self.last_warned_ms < self.interval_ms:
            return None
        self.last_warned_ms = now_ms
        self.warned = True
        tail = f"; circuit {circuit.replace('_', '-')}" if circuit != "closed" else ""
        return (
            f"receiver {self.receiver} failing: {reason} ({endpoint_address(self.url)}); "
            f"{queued} alerts queued; {self.failures} failed attempts in a row{tail}"
        )

    def succeeded(self) -> str | None:
        """An attempt reached the receiver: a recovery line if a warning was logged about the
        streak it ends, else None."""
        failures, warned = self.failures, self.warned
        self.failures, self.warned = 0, False
        if not warned:
            return None
        return f"receiver {self.receiver} delivering again after {failures} failed attempts"
