"""A real local HTTP receiver for the alerting tests, plus an Events API v2 body validator.

Each path has a script of modes (consumed in order, the last one repeats):
``"202"``, ``"400"``, ``"429"`` (with Retry-After), ``"500"``, ``"slow"`` (answers 202 after
``slow_s``) and ``"never"`` (holds the connection until the server stops).
Every request is recorded with its headers, parsed body, and validation problems.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

ACTIONS = {"trigger", "acknowledge", "resolve"}
SEVERITIES = {"critical", "error", "warning", "info"}
TOP_KEYS = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "images",
    "links",
    "client",
    "client_url",
}
PAYLOAD_KEYS = {
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
}


def events_v2_problems(doc: Any) -> list[str]:
    """Problems of a body against the PagerDuty Events API v2 rules (empty list = valid)."""
    p: list[str] = []
    if not isinstance(doc, dict):
        return ["body is not a JSON object"]
    for k in doc:
        if k not in TOP_KEYS:
            p.append(f"unknown top-level field {k!r}")
    rk = doc.get("routing_key")
    if not isinstance(rk, str) or not rk:
        p.append("routing_key missing or not a non-empty string")
    action = doc.get("event_action")
    if action not in ACTIONS:
        p.append(f"event_action {action!r} invalid")
    dk = doc.get("dedup_key")
    if dk is not None and (not isinstance(dk, str) or not dk or len(dk) > 255):
        p.append("dedup_key must be a string of 1..255 characters")
    if action in ("acknowledge", "resolve") and dk is None:
        p.append("dedup_key is required for acknowledge/resolve")
    payload = doc.get("payload")
    if action == "trigger" and payload is None:
        p.append("payload is required for trigger")
    if payload is not None:
        if not isinstance(payload, dict):
            return p + ["payload is not an object"]
        for k in payload:
            if k not in PAYLOAD_KEYS:
                p.append(f"unknown payload field {k!r}")
        s = payload.get("summary")
        if not isinstance(s, str) or not s or len(s) > 1024:
            p.append("payload.summary must be a string of 1..1024 characters")
        if not isinstance(payload.get("source"), str) or not payload.get("source"):
            p.append("payload.source required")
        if payload.get("severity") not in SEVERITIES:
            p.append(f"payload.severity {payload.get('severity')!r} invalid")
        ts = payload.get("timestamp")
        if ts is not None:
            try:
                datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
            except ValueError:
                p.append(f"payload.timestamp {ts!r} not ISO 8601")
        for k in ("component", "group", "class"):
            if k in payload and not isinstance(payload[k], str):
                p.append(f"payload.{k} must be a string")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            p.append("payload.custom_details must be an object")
    links = doc.get("links")
    if links is not None and (
        not isinstance(links, list)
        or not all(isinstance(x, dict) and isinstance(x.get("href"), str) for x in links)
    ):
        p.append("links must be a list of {href, text}")
    return p


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    status: int
    at: float
    problems: list[str] = field(default_factory=list)


class Receiver:
    def __init__(self, slow_s: float = 0.3, retry_after: str = "0", port: int = 0) -> None:
        self.slow_s = slow_s
        self.retry_after = retry_after
        self.scripts: dict[str, list[str]] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if len(raw) < n:  # the sender died mid-request: nothing was delivered
                    self.close_connection = True
                    return
                mode = outer._mode(self.path)
                if mode == "never":
                    outer.stopping.wait(30)
                    self.close_connection = True
                    return
                if mode == "slow":
                    outer.stopping.wait(outer.slow_s)
                status = 202 if mode == "slow" else int(mode)
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = None
                outer._record(
                    Request(
                        self.path,
                        dict(self.headers.items()),
                        raw,
                        body,
                        status,
                        time.time(),
                        events_v2_problems(body),
                    )
                )
                resp = orjson.dumps({"status": "success" if status == 202 else "error"})
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", outer.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(resp)))
                self.end_headers()
                self.wfile.write(resp)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        # port: a fixed one lets a test start the receiver after the dispatcher (down, then up)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *modes: str) -> None:
        with self.lock:
            self.scripts[path] = list(modes)

    def _mode(self, path: str) -> str:
        with self.lock:
            modes = self.scripts.get(path, ["202"])
            return modes.pop(0) if len(modes) > 1 else modes[0]

    def _record(self, r: Request) -> None:
        with self.lock:
            self.requests.append(r)

    def got(self, path: str | None = None, status: int | None = 202) -> list[Request]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (path is None or r.path == path) and (status is None or r.status == status)
            ]

    def keys(self, path: str | None = None) -> set[tuple[str, str]]:
        # A request cut off by a killed sender has no parsable body: it delivered nothing.
        return {
            (r.body["dedup_key"], r.body["event_action"])
            for r in self.got(path)
            if isinstance(r.body, dict)
        }

    def all_problems(self) -> list[str]:
        with self.lock:
            return [f"{r.path}: {p}" for r in self.requests for p in r.problems]

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def alert_doc(
    cls: str = "truck_offline",
    subject: str = "T1",
    action: str = "trigger",
    severity: str = "error",
    group: str = "WEST",
    **details: Any,
) -> dict[str, Any]:
    return {
        "event_action": action,
        "dedup_key": f"{cls}:{subject}",
        "payload": {
            "summary": f"{cls} {subject}",
            "source": "fleetpulse/test",
            "severity": severity,
            "timestamp": "2026-11-25T20:10:00.000Z",
            "component": f"truck:{subject}",
            "group": group,
            "class": cls,
            "custom_details": {"truck_id": subject, "lat": 45.1, "lng": -122.9, **details},
        },
    }
