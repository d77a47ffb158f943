"""A small webhook receiver for `fleetpulse up`, so the demo's alerts land somewhere visible.

``python -m alerting.local_receiver --port 9099 --out <data>/receiver/alerts.jsonl`` accepts
signed deliveries (``POST`` on any path), verifies each signature (alerting/signature.py, the
secret read from the variable ``--secret-env`` names, never from the command line), and records
every request, accepted or not, in the JSON-lines file (alerting/received.py) before it
answers: 202 for a verified delivery, 401 for a bad or missing signature, 411/400 without a
usable ``Content-Length``, 413 past ``--max-body`` (not read), 503 when the record cannot be
written (the dispatcher retries). ``GET /healthz`` answers 200. ``fleetpulse alerts tail``
shows the file.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click

from alerting import received
from alerting.signature import (
    DEFAULT_TOLERANCE_S,
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)

DEFAULT_PORT = 9099
DEFAULT_MAX_BODY = 1024 * 1024
SEEN_IDS = 100_000  # delivery ids remembered to mark re-deliveries (retries after a timeout)


class SeenIds:
    """The most recent verified delivery ids (bounded), to flag duplicates."""

    def __init__(self, limit: int = SEEN_IDS) -> None:
        self.limit = limit
        self.ids: OrderedDict[str, None] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, delivery_id: str) -> bool:
        """Remember ``delivery_id``; True if it was seen before."""
        with self.lock:
            if delivery_id in self.ids:
                self.ids.move_to_end(delivery_id)
                return True
            self.ids[delivery_id] = None
            if len(self.ids) > self.limit:
                self.ids.popitem(last=False)
            return False


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        log: received.ReceivedLog,
        max_body: int = DEFAULT_MAX_BODY,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
    ) -> None:
        self.secret = secret
        self.log = log
        self.max_body = max_body
        self.tolerance_s = tolerance_s
        self.seen = SeenIds()
        super().__init__((host, port), Handler)


class Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    timeout = 10  # seconds per socket read: a stalled sender does not hold a thread forever
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?")[0] == "/healthz":
            self._answer(200, b"ok\n")
        else:
            self._answer(404, b"not found\n")

    def do_POST(self) -> None:  # noqa: N802
        srv = self.server
        now_ms = int(time.time() * 1000)
        delivery_id = self.headers.get(DELIVERY_ID_HEADER, "")
        base: dict[str, Any] = {
            "received_ms": now_ms,
            "delivery_id": delivery_id,
            "path": self.path,
        }
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._reject(411, "no Content-Length", base, close=True)
            return
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            self._reject(400, "bad Content-Length", base, close=True)
            return
        if length > srv.max_body:
            self._reject(
                413, f"body of {length} bytes over the limit of {srv.max_body}", base, close=True
            )
            return
        try:
            body = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return
        if len(body) < length:
            self._reject(400, "body shorter than Content-Length", base, close=True)
            return
        ok, why = verify(
            srv.secret,
            delivery_id or None,
            self.headers.get(TIMESTAMP_HEADER),
            self.headers.get(SIGNATURE_HEADER),
            body,
            int(time.time()),
            srv.tolerance_s,
        )
        if not ok:
            self._reject(401, why, base, body=body)
            return
        duplicate = srv.seen.add(delivery_id)
        rec = received.record(
            **base, status=202, verdict="ok", size=length, body=body, duplicate=duplicate
        )
        if self._write(rec):
            self._answer(202, b"accepted\n")

    def _reject(
        self,
        status: int,
        reason: str,
        base: dict[str, Any],
        body: bytes | None = None,
        close: bool = False,
    ) -> None:
        if close:
            self.close_connection = True
        size = len(body) if body is not None else 0
        rec = received.record(
            **base, status=status, verdict="rejected", reason=reason, size=size, body=body
        )
        if self._write(rec):
            self._answer(status, reason.encode() + b"\n")

    def _write(self, rec: dict[str, Any]) -> bool:
        try:
            self.server.log.append(rec)
        except OSError as exc:
            self.log_error("cannot record a delivery: %s", exc)
            self._answer(503, b"cannot record the delivery\n")
            return False
        return True

    def _answer(self, status: int, text: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # every request is in the JSON-lines file; errors still go to stderr

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stderr.write(f"local receiver: {format % args}\n")


def serve(server: ReceiverServer) -> threading.Thread:
    """Run ``server`` on a daemon thread (tests, embedding)."""
    t = threading.Thread(target=server.serve_forever, name="local-receiver", daemon=True)
    t.start()
    return t


@click.command(context_settings={"show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    envvar="FLEETPULSE_RECEIVER_PORT",
    show_envvar=True,
    help="TCP port (the packaged configuration's webhook is http://127.0.0.1:9099/alerts).",
)
@click.option(
    "--secret-env",
    default="FLEETPULSE_WEBHOOK_SECRET",
    help="Environment variable holding the webhook signing secret.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=received.default_path,
    show_default="$FLEETPULSE_DATA_DIR/receiver/alerts.jsonl",
    help="JSON-lines file every request is recorded in.",
)
@click.option(
    "--max-body",
    type=click.IntRange(1, 64 * 1024 * 1024),
    default=DEFAULT_MAX_BODY,
    help="Largest request body in bytes; larger ones get 413 unread.",
)
@click.option(
    "--max-file-bytes",
    type=click.IntRange(4096),
    default=received.DEFAULT_MAX_FILE_BYTES,
    help="Rotate the file to <out>.1 past this size.",
)
@click.option(
    "--tolerance-s",
    type=click.IntRange(1),
    default=DEFAULT_TOLERANCE_S,
    help="Largest accepted distance of a delivery's timestamp from now (replays).",
)
def main(
    host: str,
    port: int,
    secret_env: str,
    out: Path,
    max_body: int,
    max_file_bytes: int,
    tolerance_s: int,
) -> None:
    """Receive signed alert webhooks and record them for `fleetpulse alerts tail`."""
    secret = os.environ.get(secret_env, "")
    if not secret:
        raise click.BadParameter(
            f"the variable {secret_env} is empty or unset: it must hold the webhook secret",
            param_hint="--secret-env",
        )
    try:
        log = received.ReceivedLog(out, max_file_bytes)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {out}: {exc}", param_hint="--out") from None
    try:
        server = ReceiverServer(host, port, secret, log, max_body, tolerance_s)
    except OSError as exc:
        log.close()
        raise click.ClickException(
            f"cannot listen on {host}:{port} (--host, --port): {exc.strerror or exc}"
        ) from None
    import signal

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    click.echo(f"local receiver on http://{host}:{port}/ recording to {out}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.close()


if __name__ == "__main__":
    main()
