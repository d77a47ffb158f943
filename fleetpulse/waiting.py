"""Polling with a deadline: the only way fleetpulse and its tests wait for something."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class Timeout(Exception):
    """The condition did not hold before the deadline."""


def wait_until(
    predicate: Callable[[], T | None | bool], timeout_s: float, what: str, interval_s: float = 0.05
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


_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_CANDIDATE = 10000


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default 32768-60999)."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A currently free loopback port outside the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` lies in the ephemeral range, where any
    outgoing connection (a Kafka client, a Flink RPC) may take it as its local port before
    the server we chose it for binds it. Ports below that range are only ever taken on
    purpose, so a random free one stays free until its server starts.
    """
    low, _ = _ephemeral_range()
    if low - _LOWEST_CANDIDATE < 1000:
        return _kernel_chosen_port()
    for _ in range(200):
        candidate = random.randrange(_LOWEST_CANDIDATE, low)
        if _bindable(candidate):
            return candidate
    return _kernel_chosen_port()


def _kernel_chosen_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindable(port: int) -> bool:
    """Whether a server could listen on ``port`` now (SO_REUSEADDR, as servers set it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def check_port_free(port: int, component: str) -> None:
    """Refuse to start ``component`` on a port something else already listens on."""
    from fleetpulse import PlatformError

    if not _bindable(port):
        raise PlatformError(
            f"port {port} for {component} is already in use on 127.0.0.1; "
            f"stop what uses it or choose another port for {component}"
        )
