"""An HTTP API shaped like Alertmanager's API v2 (``api/v2/openapi.yaml``), enough for
``amtool`` and dashboards that speak it: ``GET /api/v2/alerts``, ``GET/POST /api/v2/silences``,
``GET/DELETE /api/v2/silence/{id}``, ``GET /api/v2/receivers``, ``GET /api/v2/status``, and
``/-/healthy``, ``/-/ready``.

Alerts are read from the committed state (what ``fleetpulse alerts query`` shows); silences are
written to the same SQLite store through a connection of the API's own, so the dispatcher sees
them as it sees the CLI's (within 0.5 s). Not served: ``POST /api/v2/alerts`` (alerts come from
``fleet.alerts``) and ``/api/v2/alerts/groups``. Listens on ``127.0.0.1`` unless told otherwise:
anyone who reaches it can silence alerts."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import yaml

from alerting import views
from alerting.config import Config
from alerting.matchers import Matcher, parse_matchers
from alerting.store import Store

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
SECRET_KEYS = frozenset({"secret", "routing_key", "headers", "url"})


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def redacted_config(text: str) -> str:
    """The configuration file for ``/api/v2/status`` with secrets, routing keys, headers and
    URLs replaced by ``<secret>`` (as Alertmanager hides its secrets)."""

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: "<secret>" if k in SECRET_KEYS and v is not None else scrub(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    try:
        return yaml.safe_dump(scrub(yaml.safe_load(text)), sort_keys=False)
    except yaml.YAMLError:
        return ""


def _flag(query: dict[str, list[str]], name: str, default: bool = True) -> bool:
    values = query.get(name)
    if not values:
        return default
    v = values[-1].lower()
    if v not in ("true", "false", "1", "0"):
        raise ApiError(400, f"{name}: expected true or false, got {values[-1]!r}")
    return v in ("true", "1")


def _filters(query: dict[str, list[str]]) -> list[Matcher]:
    out: list[Matcher] = []
    for f in query.get("filter", []):
        try:
            out.extend(parse_matchers(f))
        except ValueError as exc:
            raise ApiError(400, f"bad matcher format: {exc}") from None
    return out


@dataclass
class AlertApi:
    """The API's logic without the HTTP server: ``handle`` maps a request to a status code
    and a JSON-able body (a string body is an error message, as in Alertmanager)."""

    store: Store
    cfg: Config
    config_text: str = ""
    started_ms: int = 0
    clock: Callable[[], int] = lambda: int(time.time() * 1000)

    def handle(self, method: str, target: str, body: bytes = b"") -> tuple[int, Any]:
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            return self._route(method, path, query, body)
        except ApiError as exc:
            return exc.code, str(exc)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]:
        if path in ("/-/healthy", "/-/ready"):
            return 200, "OK"
        if path == "/api/v2/alerts" and method == "GET":
            return 200, self.alerts(query)
        if path == "/api/v2/silences" and method == "GET":
            return 200, self.silences(query)
        if path == "/api/v2/silences" and method == "POST":
            return 200, {"silenceID": self.post_silence(body)}
        if path.startswith("/api/v2/silence/"):
            sid = path.rsplit("/", 1)[1]
            if method == "GET":
                return 200, self.silence(sid)
            if method == "DELETE":
                if not self.store.expire_silence(sid, self.clock()):
                    raise ApiError(404, f"silence {sid} not found")
                return 200, None
        if path == "/api/v2/receivers" and method == "GET":
            return 200, [{"name": r.name} for r in self.cfg.receivers]
        if path == "/api/v2/status" and method == "GET":
            return 200, self.status()
        if path in ("/api/v2/alerts", "/api/v2/alerts/groups"):
            raise ApiError(405, f"{method} {path} is not supported by the fleetpulse dispatcher")
        raise ApiError(404, f"{method} {path}: not found")

    def alerts(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        now = self.clock()
        receiver = (query.get("receiver") or [""])[-1]
        try:
            chosen = views.select(
                views.build(self.store.firing_alerts(), self.cfg, self.store.silences(), now),
                _filters(query),
                active=_flag(query, "active"),
                silenced=_flag(query, "silenced"),
                inhibited=_flag(query, "inhibited"),
                receiver=receiver,
            )
        except re.error as exc:
            raise ApiError(400, f"receiver: bad regular expression: {exc}") from None
        return [views.gettable_alert(v) for v in chosen]

    def silences(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        now, filters = self.clock(), _filters(query)
        updated = self.store.silence_updated_ms()
        return [
            views.gettable_silence(s, updated.get(s.id, s.starts_ms), now)
            for s in self.store.silences()
            if views.silence_matches_filter(s, filters)
        ]

    def silence(self, sid: str) -> dict[str, Any]:
        for s in self.store.silences():
            if s.id == sid:
                updated = self.store.silence_updated_ms().get(s.id, s.starts_ms)
                return views.gettable_silence(s, updated, self.clock())
        raise ApiError(404, f"silence {sid} not found")

    def post_silence(self, body: bytes) -> str:
        """Create a silence, or update the one whose ``id`` is given (``postableSilence``)."""
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"body is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ApiError(400, "body must be a postableSilence object")
        raw = obj.get("matchers")
        if not isinstance(raw, list) or not raw:
            raise ApiError(400, "matchers: at least one matcher is required")
        try:
            matchers = [Matcher.from_api(m) for m in raw]
        except ValueError as exc:
            raise ApiError(400, f"matchers: {exc}") from None
        if all(m.matches({}) for m in matchers):
            raise ApiError(400, "matchers: at least one matcher must not match the empty string")
        now = self.clock()
        try:
            starts = views.parse_iso_ms(str(obj.get("startsAt") or views.iso(now)))
            ends = views.parse_iso_ms(str(obj["endsAt"]))
        except (KeyError, ValueError) as exc:
            raise ApiError(400, f"startsAt/endsAt: need RFC 3339 times: {exc}") from None
        if ends <= now:
            raise ApiError(400, "endsAt: the silence must end in the future")
        if ends <= starts:
            raise ApiError(400, "endsAt: the silence must end after it starts")
        starts = max(starts, now)
        comment, created_by = str(obj.get("comment", "")), str(obj.get("createdBy", ""))
        sid = obj.get("id")
        if sid:
            if not self.store.update_silence(
                str(sid), matchers, starts, ends, comment, created_by, now
            ):
                raise ApiError(404, f"silence {sid} not found")
            return str(sid)
        return self.store.add_silence(matchers, starts, ends, comment, created_by, now)

    def status(self) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("fleetpulse")
        except PackageNotFoundError:
            ver = "unknown"
        return {
            "cluster": {"status": "disabled", "peers": []},
            "versionInfo": {
                "version": ver,
                "revision": "",
                "branch": "",
                "buildUser": "fleetpulse",
                "buildDate": "",
                "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
            },
            "config": {"original": redacted_config(self.config_text)},
            "uptime": views.iso(self.started_ms or self.clock()),
        }


class ApiServer:
    """Serves :class:`AlertApi` over HTTP (threads; each request uses the API's store, whose
    lock serialises them)."""

    def __init__(self, api: AlertApi, port: int, host: str = "127.0.0.1") -> None:
        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    code, out = 413, f"body larger than {MAX_BODY} bytes"
                else:
                    body = self.rfile.read(length) if length > 0 else b""
                    try:
                        code, out = api.handle(self.command, self.path, body)
                    except Exception as exc:  # noqa: BLE001 - answer 500, keep serving
                        log.exception("API %s %s failed", self.command, self.path)
                        code, out = 500, f"internal error: {exc!r}"[:300]
                data = b"" if out is None else orjson.dumps(out)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve  # noqa: N815 - http.server API

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.api = api
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="api", daemon=True)

    def start(self) -> ApiServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
