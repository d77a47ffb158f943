"""A quiet JSON-replying request handler for the local webhook receivers of the benchmarks."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any


class QuietJsonHandler(BaseHTTPRequestHandler):
    """Base handler: ``_reply`` sends a JSON body; no per-request log lines on stderr."""

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass
