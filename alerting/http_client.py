"""HTTP transports that do not trust the receiver (``http_client: stdlib`` and ``httpx``).

Each attempt has one total deadline, the receiver's ``timeout``: resolution, connect, TLS,
sending and the whole response together (alerting/deadline.py), so a receiver trickling a byte
every few seconds cannot hold a sender thread longer than that. At most
:data:`MAX_RESPONSE_BYTES` of a response body are read; a longer body is not drained: the
connection is closed. The outcome is decided by the status line: once a 2xx status has
arrived the event is delivered, even if reading the rest of the response then fails or times
out (re-sending it would deliver it twice). ``Retry-After`` is read only from a non-2xx
response and parsed without ever raising (``backoff.parse_retry_after``).
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpcore
import httpx

from alerting import backoff
from alerting.backoff import Outcome
from alerting.deadline import DeadlineReader, connect, left

MAX_RESPONSE_BYTES = 64 * 1024
ERROR_CHARS = 200  # of a non-2xx body kept as the error text


def wall_ms() -> int:
    return int(time.time() * 1000)


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Outcome: ...

    def close(self) -> None: ...


def _outcome(status: int, retry_after: str | None, data: bytes) -> Outcome:
    if 200 <= status < 300:
        return Outcome(status)
    error = data[:ERROR_CHARS].decode("utf-8", "replace").strip()
    return Outcome(status, error, backoff.parse_retry_after(retry_after, wall_ms()))


def _timeout(timeout_s: float) -> Outcome:
    return Outcome(None, f"timeout after {timeout_s:g}s (whole attempt)")


# -- stdlib ------------------------------------------------------------------------------------


class _DeadlineSocket:
    """What ``HTTPResponse`` reads through: ``makefile`` yields reads bounded by the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(DeadlineReader(self.sock, self.deadline))


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None) -> None:
        super().__init__(host, port)
        self.deadline = 0.0  # of the attempt in progress, set before each request
        _use_deadline(self)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int | None) -> None:
        super().__init__(host, port)
        self.deadline = 0.0
        _use_deadline(self)


def _use_deadline(conn: _HTTPConnection | _HTTPSConnection) -> None:
    """Make ``conn`` resolve, connect and read its responses under ``conn.deadline``."""

    def create(
        address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        return connect(address[0], address[1], conn.deadline, source_address)

    def response(sock: socket.socket, *args: Any, **kw: Any) -> http.client.HTTPResponse:
        return http.client.HTTPResponse(_DeadlineSocket(sock, conn.deadline), *args, **kw)  # type: ignore[arg-type]

    conn._create_connection = create  # type: ignore[union-attr]  # not in typeshed
    conn.response_class = response  # type: ignore[assignment]


class StdlibTransport:
    """``http.client`` with one keep-alive connection per sender thread and endpoint.

    Measured on this project's 2-core machine against a local receiver: about 130 us of CPU
    per request against about 440 us for ``httpx.Client`` (and httpx's shared pool contends
    between sender threads), which decides whether one dispatcher process keeps up with
    1,000 alerts/s. A request that fails on a reused keep-alive connection before any response
    (the server closed it while idle) is retried once on a fresh connection, within the same
    deadline."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.all: list[http.client.HTTPConnection] = []

    def _conn(self, url: str, fresh: bool) -> tuple[_HTTPConnection | _HTTPSConnection, str, bool]:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        conns: dict[tuple[str, str], _HTTPConnection | _HTTPSConnection] = (
            getattr(self.local, "conns", None) or {}
        )
        self.local.conns = conns
        conn = conns.get(key)
        reused = conn is not None and conn.sock is not None and not fresh
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            cls = _HTTPSConnection if parts.scheme == "https" else _HTTPConnection
            conn = cls(parts.hostname or "", parts.port)
            conns[key] = conn
            with self.lock:
                self.all.append(conn)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return conn, path, reused

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Outcome:
        deadline = time.monotonic() + timeout_s
        fresh = False
        while True:
            conn, path, reused = self._conn(url, fresh)
            conn.deadline = deadline
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(left(deadline))
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
            except TimeoutError:
                conn.close()
                return _timeout(timeout_s)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if reused and not fresh:
                    fresh = True
                    continue
                return Outcome(None, f"{type(exc).__name__}: {exc}"[:300])
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                return Outcome(None, f"{type(exc).__name__}: {exc}"[:300])
            try:
                data = resp.read(MAX_RESPONSE_BYTES)
                whole = resp.isclosed()  # the body ended within the cap
            except (OSError, http.client.HTTPException):  # the status stands
                data, whole = b"", False
            if resp.will_close or not whole:
                conn.close()  # never drain an oversized or stalled body
            return _outcome(resp.status, resp.getheader("Retry-After"), data)

    def close(self) -> None:
        with self.lock:
            for c in self.all:
                c.close()
            self.all.clear()


# -- httpx -------------------------------------------------------------------------------------


class _Deadlines(threading.local):
    """The deadline of the attempt running on this thread (``None``: no attempt)."""

    value: float | None = None

    def cap(self, timeout: float | None, exc: type[Exception]) -> float | None:
        if self.value is None:
            return timeout
        remaining = self.value - time.monotonic()
        if remaining <= 0:
            raise exc("deadline exceeded")
        return remaining if timeout is None else min(timeout, remaining)


class _Stream(httpcore.NetworkStream):
    """A socket whose every read, write and TLS handshake gets at most the time left."""

    def __init__(self, sock: socket.socket, deadlines: _Deadlines) -> None:
        self.sock = sock
        self.deadlines = deadlines

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self.sock.settimeout(self.deadlines.cap(timeout, httpcore.ReadTimeout))
            return self.sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self.sock.settimeout(self.deadlines.cap(timeout, httpcore.WriteTimeout))
            self.sock.sendall(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    def close(self) -> None:
        self.sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        try:
            self.sock.settimeout(self.deadlines.cap(timeout, httpcore.ConnectTimeout))
            tls = ssl_context.wrap_socket(self.sock, server_hostname=server_hostname)
        except TimeoutError as exc:
            self.sock.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            self.sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return _Stream(tls, self.deadlines)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":  # httpcore asks it for the ALPN protocol
            return self.sock if isinstance(self.sock, ssl.SSLSocket) else None
        if info == "client_addr":
            return self.sock.getsockname()
        if info == "server_addr":
            return self.sock.getpeername()
        if info == "socket":
            return self.sock
        if info == "is_readable":  # an idle pooled connection that is readable was closed
            if self.sock.fileno() < 0:
                return True
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        return None


class _Backend(httpcore.NetworkBackend):
    def __init__(self, deadlines: _Deadlines) -> None:
        self.deadlines = deadlines

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = self.deadlines.value or time.monotonic() + (timeout or 30.0)
        try:
            sock = connect(host, port, deadline, (local_address, 0) if local_address else None)
            for option in socket_options or ():
                sock.setsockopt(*option)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return _Stream(sock, self.deadlines)


class _HTTPTransport(httpx.HTTPTransport):
    def __init__(self, limits: httpx.Limits, backend: httpcore.NetworkBackend) -> None:
        super().__init__(limits=limits)
        # httpx offers no way to hand its httpcore pool a network backend: the same pool,
        # built through httpcore's public API with one, replaces it
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class HttpxTransport:
    def __init__(self, max_connections: int = 8) -> None:
        self.deadlines = _Deadlines()
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self.client = httpx.Client(
            transport=_HTTPTransport(limits, _Backend(self.deadlines)), follow_redirects=False
        )

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Outcome:
        self.deadlines.value = time.monotonic() + timeout_s
        try:
            with self.client.stream(
                "POST", url, content=body, headers=headers, timeout=timeout_s
            ) as r:
                data = b""
                try:
                    for chunk in r.iter_raw():
                        data += chunk
                        if len(data) >= MAX_RESPONSE_BYTES:
                            break  # closing an unfinished response closes its connection
                except httpx.HTTPError:  # the status stands
                    pass
                return _outcome(r.status_code, r.headers.get("retry-after"), data)
        except httpx.TimeoutException:
            return _timeout(timeout_s)
        except httpx.HTTPError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:300])
        finally:
            self.deadlines.value = None

    def close(self) -> None:
        self.client.close()
