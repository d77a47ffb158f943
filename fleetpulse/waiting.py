"""Polling with a deadline: the only way fleetpulse and its tests wait for something."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(Exception):
    """The condition did not hold before the deadline."""


def wait_until(
    predicate: Callable[[], T | None | bool],
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Exceptions from the predicate count as "not yet" so callers can poll services that are
    still starting. On timeout the last exception (if any) is named in the message.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value  # type: ignore[return-value]
        except Exception as exc:  # noqa: BLE001 - polling treats errors as "not ready"
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise Timeout(f"timed out after {timeout_s:.0f}s waiting for {what}{detail}")
        time.sleep(interval_s)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    """A currently free loopback port (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, component: str) -> None:
    """Refuse to start ``component`` on a port something else already listens on."""
    from fleetpulse import PlatformError

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise PlatformError(
                f"port {port} for {component} is already in use on 127.0.0.1; "
                f"stop what uses it or choose another port for {component}"
            ) from None
