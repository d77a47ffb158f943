"""A real local HTTP server that misbehaves on purpose, for the dispatcher's fault matrix.

Each path has a script of modes; the n-th request of one delivery (``X-Fleetpulse-Delivery-Id``
or ``webhook-id``) gets the n-th mode (the last one repeats), so every alert sees the whole
script. Modes:

- ``202``: accepted; ``500``: server error;
- ``202-retry-inf``: accepted, with ``Retry-After: inf``;
- ``429-inf`` / ``429-huge``: 429 with ``Retry-After: inf`` / ``99999999999``;
- ``200-50mb``: accepted, then a 50 MB body streamed until the client hangs up;
- ``trickle``: the response (``200``) one byte every ``trickle_s`` seconds;
- ``reset``: the request is read, then the connection is reset (RST).

Every request is recorded with its mode and arrival time (``time.time()``).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BIG_BODY = 50 * 1024 * 1024
# answers whose 2xx status line reaches the client at once (a trickled one never arrives whole)
ACCEPTING = {"202", "202-retry-inf", "200-50mb"}


@dataclass(frozen=True)
class Hit:
    path: str
    delivery_id: str
    mode: str
    at: float
    body: bytes


class FaultServer:
    def __init__(self, trickle_s: float = 4.0) -> None:
        self.trickle_s = trickle_s
        self.scripts: dict[str, list[str]] = {}
        self.hits: list[Hit] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if len(raw) < n:
                    self.close_connection = True
                    return
                did = (
                    self.headers.get("X-Fleetpulse-Delivery-Id")
                    or self.headers.get("webhook-id")
                    or ""
                )
                mode = outer._mode(self.path, did)
                outer._record(Hit(self.path, did, mode, time.time(), raw))
                try:
                    outer._answer(self, mode)
                except OSError:  # the client gave up (its deadline): expected
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # the default backlog (5) drops SYNs when many senders reconnect at once: the
            # client's SYN retransmit then adds a second, which is not the client's doing
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # resets and hang-ups are the point here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *modes: str) -> None:
        with self.lock:
            self.scripts[path] = list(modes)

    def _mode(self, path: str, did: str) -> str:
        with self.lock:
            n = self.counts.get((path, did), 0)
            self.counts[(path, did)] = n + 1
            modes = self.scripts.get(path, ["202"])
            return modes[min(n, len(modes) - 1)]

    def _record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)

    def got(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def accepted(self, path: str) -> dict[str, int]:
        """Delivery id -> how many times the server answered it with a 2xx."""
        out: dict[str, int] = {}
        for h in self.got(path):
            if h.mode in ACCEPTING:
                out[h.delivery_id] = out.get(h.delivery_id, 0) + 1
        return out

    def _answer(self, h: BaseHTTPRequestHandler, mode: str) -> None:
        if mode == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
            return
        if mode == "trickle":
            h.close_connection = True
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            for i in range(len(head)):
                h.wfile.write(head[i : i + 1])
                h.wfile.flush()
                if self.stopping.wait(self.trickle_s):
                    return
            return
        if mode == "200-50mb":
            h.close_connection = True
            h.send_response(200)
            h.send_header("Content-Length", str(BIG_BODY))
            h.end_headers()
            chunk = b"x" * 65536
            for _ in range(BIG_BODY // len(chunk)):
                if self.stopping.is_set():
                    return
                h.wfile.write(chunk)
            return
        status = {"202": 202, "202-retry-inf": 202, "500": 500, "429-inf": 429, "429-huge": 429}[
            mode
        ]
        body = b'{"status":"ok"}' if status < 300 else b'{"status":"error"}'
        h.send_response(status)
        if mode in ("202-retry-inf", "429-inf"):
            h.send_header("Retry-After", "inf")
        elif mode == "429-huge":
            h.send_header("Retry-After", "99999999999")
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def start(self) -> FaultServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
