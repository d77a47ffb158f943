"""Socket I/O under one total deadline (``time.monotonic()`` seconds) per HTTP attempt.

A per-read timeout does not bound an attempt: a receiver that sends one byte every few seconds
never trips it. Here every step (name resolution, connect, TLS, each send and each read) gets
only the time left until the attempt's deadline, so an attempt ends by then whatever the peer
does. Name resolution (``getaddrinfo`` has no timeout) runs in a daemon thread of its own that
the attempt stops waiting for at the deadline; IP literals skip it.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
import time
from typing import Any

AddrInfo = list[tuple[Any, ...]]


def left(deadline: float) -> float:
    """Seconds left until ``deadline``; ``TimeoutError`` once it has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline exceeded")
    return remaining


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def resolve(host: str, port: int, deadline: float) -> AddrInfo:
    """``getaddrinfo`` for a TCP connection, given up on at the deadline."""
    if _is_ip(host):
        return socket.getaddrinfo(host.strip("[]"), port, 0, socket.SOCK_STREAM)
    box: list[AddrInfo | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box.append(exc)
        done.set()

    threading.Thread(target=run, name=f"resolve-{host}"[:60], daemon=True).start()
    if not done.wait(left(deadline)):
        raise TimeoutError(f"resolving {host} took longer than the deadline")
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


def connect(
    host: str, port: int, deadline: float, source_address: tuple[str, int] | None = None
) -> socket.socket:
    """A connected TCP socket (``TCP_NODELAY``), each address tried with the time left."""
    error: OSError | None = None
    for family, type_, proto, _, addr in resolve(host, port, deadline):
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(left(deadline))
            if source_address:
                sock.bind(source_address)
            sock.connect(addr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:  # TimeoutError included
            sock.close()
            error = exc
            if isinstance(exc, TimeoutError):
                break
    raise error or OSError(f"no address for {host}")


class DeadlineReader(io.RawIOBase):
    """Raw reads from a socket, each limited to the time left until the deadline (what
    ``http.client`` reads the status line, headers and body through)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.sock.settimeout(left(self.deadline))
        return self.sock.recv_into(buffer)
