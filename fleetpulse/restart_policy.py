"""When `fleetpulse up` restarts a component that died, and when it gives up.

A crash is usually transient (an OOM kill, a dependency restarting under it): restarting
the one component keeps the rest serving, as Erlang/OTP supervisors and systemd's
``Restart=on-failure`` do. A component that keeps dying would only flap, so after more
than ``max_restarts`` deaths within ``window_s`` the stack stops, naming it. Pure logic
on a caller-supplied clock, so the policy is tested without waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetpulse import PlatformError

MAX_RESTARTS_ENV = "FLEETPULSE_UP_MAX_RESTARTS"
WINDOW_ENV = "FLEETPULSE_UP_RESTART_WINDOW"


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff from ``first_backoff_s`` doubling to ``max_backoff_s``; the
    backoff grows with the deaths still inside the window, so a component that ran
    quietly for ``window_s`` starts again from the first delay."""

    max_restarts: int = 5
    window_s: float = 600.0
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RestartPolicy:
        """The defaults, with ``FLEETPULSE_UP_MAX_RESTARTS`` (0: never restart) and
        ``FLEETPULSE_UP_RESTART_WINDOW`` (seconds) when set."""
        policy = cls()
        try:
            if environ.get(MAX_RESTARTS_ENV, ""):
                policy = cls(max_restarts=int(environ[MAX_RESTARTS_ENV]))
            if environ.get(WINDOW_ENV, ""):
                policy = cls(max_restarts=policy.max_restarts, window_s=float(environ[WINDOW_ENV]))
        except ValueError as exc:
            raise PlatformError(f"{MAX_RESTARTS_ENV} / {WINDOW_ENV}: {exc}") from None
        if policy.max_restarts < 0 or not policy.window_s > 0:
            raise PlatformError(
                f"{MAX_RESTARTS_ENV} must be 0 or more and {WINDOW_ENV} more than 0 s"
            )
        return policy

    def backoff_s(self, recent_deaths: int) -> float:
        """Delay before restarting after the ``recent_deaths``-th death in the window."""
        exponent = min(max(recent_deaths - 1, 0), 30)  # no float overflow however many
        return float(min(self.first_backoff_s * 2**exponent, self.max_backoff_s))


@dataclass
class RestartHistory:
    """One component's deaths (clock times) and restarts, as `status` reports them."""

    policy: RestartPolicy
    deaths: list[float] = field(default_factory=list)
    restarts: int = 0

    def on_death(self, now: float) -> float | None:
        """Record a death at ``now``: the seconds to wait before restarting, or None when
        the component died more than ``max_restarts`` times within the window."""
        window = self.policy.window_s
        self.deaths = [t for t in self.deaths if now - t < window] + [now]
        if len(self.deaths) > self.policy.max_restarts:
            return None
        return self.policy.backoff_s(len(self.deaths))
