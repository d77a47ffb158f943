"""The asyncio websocket server (thin I/O around :mod:`ws_gateway.router`).

One process serves the map page, /healthz, /metrics and the websocket on one port. A stream
reader task routes `stream:positions` entries into per-client coalescing queues; after each
batch one flush pass writes every client with queued frames (see :class:`Connection`), and a
client whose socket is full is skipped, so a slow client only ever waits on itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import mimetypes
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from shapely.geometry import box as shapely_box
from shapely.geometry.base import BaseGeometry
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import OPEN, Protocol, Side

from udfs.contract import delay_account_key, shipment_of_delay_member
from udfs.geo import data_file
from udfs.redis_url import redacted
from ws_gateway import AuthError, ClientError, GatewayError, frames, redis_io
from ws_gateway.alerts import AlertReader, MapAlert
from ws_gateway.filters import Filter, parse_filter
from ws_gateway.geo import Areas, areas_for
from ws_gateway.keepalive import SpreadKeepaliveConnection
from ws_gateway.metrics import GatewayMetrics
from ws_gateway.queue import CoalescingQueue, QueueFull
from ws_gateway.ratelimit import TokenBucket
from ws_gateway.redis_client import REDIS_ERRORS, AsyncClient, aconnect
from ws_gateway.router import Router, Subscription, seq_key
from ws_gateway.settings import GatewaySettings
from ws_gateway.tokens import ALL_REGIONS, Grant, verify_token

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
DATA_FILES = {f"/data/{name}": data_file(name) for name in ("us-states.geojson", "hubs.geojson")}

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_LAGGING = 4408
CLOSE_RATE_LIMITED = 4429
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455: the server is at its connection limit
LAGGING_FRAME = orjson.dumps({"type": "lagging", "message": "you are too far behind; closing"})
SNAPSHOT_KEY = "\x00snapshot"
DELAYS_KEY = ("\x00delays",)
# The map page and everything it loads come from the gateway itself; no inline script or style
# element, no eval, no plugins, no framing; `connect-src 'self'` covers the page's own ws(s)://.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
WRITE_BATCH = 512
MAX_SUB_ID = 64


class Connection:
    """One websocket client: its grant, subscriptions, queue and rate limit.

    Frames wait in the client's coalescing queue until the gateway's next flush pass (after
    the batch of stream entries that produced them), which writes each dirty client's frames
    to its socket in one ``transport.write``: no task switch and no websockets ``send`` per
    message. A client whose socket buffer is full (``paused``) is skipped; its frames keep
    coalescing and a small task waits for the buffer to drain, so a slow client only ever
    waits on itself.
    """

    def __init__(
        self, gw: Gateway, ws: ServerConnection, grant: Grant, token: str | None = None
    ) -> None:
        self.gw = gw
        self.ws = ws
        self.grant = grant
        self.token = token  # counted against max_connections_per_token (auth on)
        self.expiry: asyncio.TimerHandle | None = None
        self.subs: dict[str, Subscription] = {}
        self.queue = CoalescingQueue(gw.settings.max_queue_items)
        self.bucket = TokenBucket(gw.settings.rate_per_s, gw.settings.rate_burst, gw.clock())
        self.closing = False
        self.watch_delays = False
        self.pending_since: str | None = None
        self.strikes = 0
        self.dirty = False  # in the gateway's list of connections to flush
        self.reported_coalesced = 0
        self._waiter: asyncio.Task[None] | None = None  # drain wait (or the slow-path sender)
        self._raw = _RAW_WRITE and not ws.protocol.extensions

    # Router's Client protocol
    def enqueue(self, key: Hashable | None, frame: bytes) -> None:
        if self.closing:
            return
        try:
            self.queue.put(key, frame, self.gw.clock())
        except QueueFull:
            self.gw.lag_out(self)
            return
        if not self.dirty:  # _want_flush, inline: this runs once per message
            self.dirty = True
            self.gw.mark_dirty(self)

    def _want_flush(self) -> None:
        """Be in the gateway's next flush pass (once, however many frames are queued)."""
        if not self.dirty:
            self.dirty = True
            self.gw.mark_dirty(self)

    def error(self, code: str, message: str, **extra: Any) -> None:
        self.gw.metrics.client_errors.labels(code).inc()
        # keyed by code: a flood of bad messages coalesces into one pending error frame
        self.enqueue(("\x00error", code), frames.error(code, message, **extra))

    def flush(self, now: float) -> int:
        """Write up to WRITE_BATCH queued frames to the socket now; how many. The age of the
        oldest written frame goes into the gateway's pass (``Gateway.pass_oldest``).

        Nothing is written while the socket's buffer is over its limit (a task waits for it to
        drain, then marks the connection dirty again) or while the connection is not open.
        """
        queue = self.queue
        if self.closing or not queue:
            return 0
        if not self._raw:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_task(self._send_slowly())
            return 0
        ws = self.ws
        if ws.paused:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_task(self._drained())
            return 0
        protocol = ws.protocol
        if (
            protocol.state is not OPEN
            or protocol.expect_continuation_frame
            or ws.transport.is_closing()
        ):
            return 0  # closing: the handler drops the queue when the connection ends
        batch, since = queue.take(WRITE_BATCH)
        ws.transport.write(frames.wire_text(batch))
        gw = self.gw
        if now - since > gw.pass_oldest:
            gw.pass_oldest = now - since
        if queue:  # the rest in the next pass
            self._want_flush()
        return len(batch)

    async def _drained(self) -> None:
        try:
            await self.ws.drain()
        except Exception:  # noqa: BLE001 - the connection is gone; its handler cleans up
            return
        finally:
            self._waiter = None
        if not self.closing and len(self.queue):
            self._want_flush()

    async def _send_slowly(self) -> None:
        """Fallback when websockets' internals are not as expected: plain ``send``."""
        try:
            while len(self.queue) and not self.closing:
                batch = self.queue.pop_batch(WRITE_BATCH)
                for frame in batch:
                    await self.ws.send(frame, text=True)
                self.gw.metrics.messages_sent.inc(len(batch))
        except ConnectionClosed:
            pass
        finally:
            self._waiter = None

    def stop(self) -> None:
        if self._waiter is not None:
            self._waiter.cancel()
            self._waiter = None
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None


# Frames are written to the transport directly (server frames are unmasked and no extension is
# negotiated: compression=None), which needs these websockets internals; else ``send``.
_RAW_WRITE = all(
    hasattr(ServerConnection, name) for name in ("drain", "pause_writing")
) and hasattr(Protocol(Side.SERVER), "expect_continuation_frame")


class Gateway:
    """The service: owns the router, Redis clients, alert reader and websocket server."""

    def __init__(
        self,
        settings: GatewaySettings,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        areas: Areas | None = None,
    ) -> None:
        if settings.auth and not settings.secret:
            raise GatewayError(
                "token authentication is on but no secret is set: pass --secret "
                "or FLEETPULSE_GATEWAY_SECRET (or --no-auth for local dev)"
            )
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = GatewayMetrics(self.registry)
        self.clock = clock
        self.wall_clock = wall_clock
        self._areas = areas
        self.router = Router(replay_entries=settings.replay_entries)
        self.connections: set[Connection] = set()
        self.redis: AsyncClient | None = None
        self._stream_redis: AsyncClient | None = None
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._alerts: AlertReader | None = None
        self._delays_frame: bytes | None = None
        # the delays frames last sent to regional tokens, by their region set
        self._regional_delays: dict[frozenset[str], bytes] = {}
        self._per_token: dict[str, int] = {}
        self._dirty: list[Connection] = []
        self._flush_handle: asyncio.Handle | None = None
        self._unwritten_since_ms: int | None = None  # oldest routed entry not yet flushed
        self.pass_oldest = 0.0  # seconds the oldest frame written in the current pass waited
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stream_ok = False
        self.port = settings.port

    @property
    def areas(self) -> Areas:
        if self._areas is None:
            self._areas = areas_for(self.settings.geofences_file)
        return self._areas

    # -- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        from ws_gateway.build_assets import ensure_assets

        ensure_assets()
        s = self.settings
        self._loop = asyncio.get_running_loop()
        try:
            # the node says whether it is in a cluster; the stream reader's client is its twin
            self.redis = await aconnect(s.redis_url)
            self._stream_redis = type(self.redis).from_url(s.redis_url)
            start_id = await redis_io.stream_end(self.redis, s.stream_key)
        except REDIS_ERRORS as exc:
            await self.stop()
            raise GatewayError(f"cannot reach Redis at {redacted(s.redis_url)}: {exc}") from None
        self.router.set_start(start_id)
        _ = self.areas  # load shapes before clients arrive, not during the first subscribe
        origins: list[Any] | None = None
        if s.allowed_origins != ("*",):
            origins = [
                None,
                f"http://{s.host}:{s.port}",
                f"http://localhost:{s.port}",
                f"http://127.0.0.1:{s.port}",
                *s.allowed_origins,
            ]
        self._server = await serve(
            self._handle,
            s.host,
            s.port,
            process_request=self._http,
            origins=origins,
            max_size=s.max_frame_bytes,
            max_queue=16,
            write_limit=s.write_limit_bytes,
            compression=None,
            close_timeout=s.close_timeout_s,
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_interval_s,
            create_connection=SpreadKeepaliveConnection if s.spread_keepalive else None,
        )
        sock = next(iter(self._server.sockets))
        self.port = int(sock.getsockname()[1])
        self._tasks.append(asyncio.create_task(self._read_stream(start_id), name="stream"))
        self._tasks.append(asyncio.create_task(self._sweep(), name="sweep"))
        self._tasks.append(asyncio.create_task(self._poll_delays(), name="delays"))
        if s.bootstrap:
            loop = asyncio.get_running_loop()

            def deliver(alert: MapAlert) -> None:
                loop.call_soon_threadsafe(self.on_alert, alert)

            def malformed(reason: str) -> None:
                self.metrics.alerts_malformed.labels(reason).inc()

            self._alerts = AlertReader(
                s.bootstrap,
                s.alerts_topic,
                deliver,
                s.min_alert_severity,
                on_malformed=malformed,
                on_lag=self.metrics.alerts_lag.set,
                client=s.kafka_properties.kafka_python(),
            )
            self._alerts.start()
        if s.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(s.metrics_port, addr=s.host, registry=self.registry)
        log.info("gateway on http://%s:%d (auth %s)", s.host, self.port, "on" if s.auth else "OFF")

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._alerts is not None:
            self._alerts.stop()
        for r in (self.redis, self._stream_redis):
            if r is not None:
                await r.aclose()

    async def serve_forever(self, after_start: Callable[[], None] | None = None) -> None:
        """Start, call ``after_start`` (process tuning once everything is loaded), serve until
        cancelled, stop."""
        await self.start()
        if after_start is not None:
            after_start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()

    # -- background tasks ----------------------------------------------------------------
    async def _read_stream(self, start_id: str) -> None:
        assert self._stream_redis is not None
        last = start_id
        while True:
            try:
                self.stream_ok = True
                await redis_io.read_stream(
                    self._stream_redis,
                    self.settings.stream_key,
                    last,
                    self.on_entries,
                    count=self.settings.stream_read_count,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis hiccup: report, retry
                self.stream_ok = False
                log.warning("stream reader: %r; retrying", exc)
                await asyncio.sleep(0.5)
            last = self.router.last_seq

    # -- writing to clients --------------------------------------------------------------
    def mark_dirty(self, conn: Connection) -> None:
        """``conn`` has frames to write: flush it in the next pass (soon, or after
        ``flush_interval_s`` so that a client's frames of several stream batches share one
        write)."""
        self._dirty.append(conn)
        if self._flush_handle is None:
            loop = self._loop or asyncio.get_running_loop()
            interval = self.settings.flush_interval_s
            self._flush_handle = (
                loop.call_later(interval, self._flush)
                if interval > 0
                else loop.call_soon(self._flush)
            )

    def _flush(self) -> None:
        """One pass over the connections with queued frames (see :class:`Connection`)."""
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        now = self.clock()
        self.pass_oldest = 0.0
        sent = coalesced = 0
        for conn in dirty:
            conn.dirty = False
            sent += conn.flush(now)
            queue = conn.queue
            if queue.coalesced != conn.reported_coalesced:
                coalesced += queue.coalesced - conn.reported_coalesced
                conn.reported_coalesced = queue.coalesced
        m = self.metrics
        if sent:
            m.messages_sent.inc(sent)
            m.queue_wait.observe(self.pass_oldest)
            if self._unwritten_since_ms is not None:
                m.stream_to_write.observe(
                    max(0.0, self.wall_clock() - self._unwritten_since_ms / 1000.0)
                )
        self._unwritten_since_ms = None
        if coalesced:
            m.coalesced.inc(coalesced)

    def on_entries(self, entries: list[tuple[bytes, list[bytes]]]) -> None:
        queued = self.router.on_batch(entries)
        self.metrics.stream_entries.inc(len(entries))
        if queued and self._unwritten_since_ms is None:
            self._unwritten_since_ms = seq_key(entries[0][0])[0]
        last_ms = self.router.last_key[0]
        self.metrics.stream_lag.set(max(0.0, self.wall_clock() - last_ms / 1000.0))

    async def _sweep(self) -> None:
        """Close clients whose queue has waited too long (a stalled socket)."""
        while True:
            await asyncio.sleep(0.25)
            now = self.clock()
            max_lag_s = self.settings.max_lag_s
            for conn in list(self.connections):  # an empty queue (most) costs no call
                if conn.queue and not conn.closing and conn.queue.oldest_age(now) > max_lag_s:
                    self.lag_out(conn)

    async def _poll_delays(self) -> None:
        assert self.redis is not None
        s = self.settings
        while True:
            try:
                watchers = [c for c in self.connections if c.watch_delays]
                if any(c.grant.everything for c in watchers):
                    rows = await self.redis.zrevrange(
                        s.delays_key, 0, s.delays_limit - 1, withscores=True
                    )
                    frame = delays_frame(rows)
                    if frame != self._delays_frame:
                        self._delays_frame = frame
                        for c in watchers:
                            if c.grant.everything:
                                c.enqueue(DELAYS_KEY, frame)
                regional = {c.grant.regions for c in watchers if not c.grant.everything}
                if regional:
                    frames_by = await self._regional_delays_frames(regional)
                    for c in watchers:
                        if not c.grant.everything:
                            frame = frames_by[c.grant.regions]
                            if frame != self._regional_delays.get(c.grant.regions):
                                c.enqueue(DELAYS_KEY, frame)
                    # after the loop: every watcher compared against the previous frame
                    self._regional_delays = frames_by
            except REDIS_ERRORS as exc:
                log.warning("delays poll: %r", exc)
            await asyncio.sleep(s.delays_poll_s)

    async def _regional_delays_frames(
        self, region_sets: set[frozenset[str]]
    ) -> dict[frozenset[str], bytes]:
        """The delays list of each regional token's region set: the shipments among the
        ``delays_region_scan`` most severe whose region is one of them.

        A shipment's region is its pickup region, the one ``region:{R}`` counts it in (and the
        ``payload.group`` of its alerts); the Redis model's `delays` set does not carry it, so
        it is read from the delay job's account hash (``delayjob:shipment:{id}``
        ``counted_region``). A shipment without one is shown to all-region tokens only."""
        assert self.redis is not None
        s = self.settings
        rows = await self.redis.zrevrange(
            s.delays_key, 0, s.delays_region_scan - 1, withscores=True
        )
        regions: list[Any] = []
        for start in range(0, len(rows), 1000):
            async with self.redis.pipeline(transaction=False) as pipe:
                for member, _score in rows[start : start + 1000]:
                    name = member.decode() if isinstance(member, bytes) else str(member)
                    pipe.hget(delay_account_key(shipment_of_delay_member(name)), "counted_region")
                regions.extend(await pipe.execute())
        out: dict[frozenset[str], bytes] = {}
        for allowed in region_sets:
            mine = [
                row
                for row, region in zip(rows, regions, strict=True)
                if region is not None and _text(region) in allowed
            ]
            out[allowed] = delays_frame(mine[: s.delays_limit])
        return out

    def on_alert(self, alert: MapAlert) -> None:
        frame = alert.frame or frames.alert(alert.event)
        targets = self.router.alert_targets(alert.lat, alert.lng, alert.truck_id, alert.region)
        for client in targets:
            client.enqueue(None, frame)
        self.metrics.alerts.inc(len(targets))

    def lag_out(self, conn: Connection) -> None:
        """Tell a client that stays behind, then close it; its queue is dropped."""
        if conn.closing:
            return
        conn.closing = True
        self.metrics.lagging.inc()
        self.metrics.dropped.inc(conn.queue.drop_all())
        asyncio.get_running_loop().create_task(self._close_lagging(conn))

    async def _close_lagging(self, conn: Connection) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                conn.ws.send(LAGGING_FRAME, text=True), self.settings.close_timeout_s
            )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                conn.ws.close(CLOSE_LAGGING, "lagging"), self.settings.close_timeout_s
            )
        conn.ws.transport.abort()

    # -- HTTP ----------------------------------------------------------------------------
    async def _http(self, ws: ServerConnection, request: Request) -> Response | None:
        if "websocket" in request.headers.get("Upgrade", "").lower():
            return self._over_capacity(_token_of(request))
        path = urlsplit(request.path).path
        if path == "/healthz":
            body = self.health()
            status = HTTPStatus.OK if body["status"] == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
            return _response(status, orjson.dumps(body), "application/json")
        if path == "/metrics":
            return _response(HTTPStatus.OK, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        file = static_file(path)
        if file is None:
            return _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if file.suffix == ".geojson":
            ctype = "application/geo+json"
        return _response(HTTPStatus.OK, file.read_bytes(), ctype)

    def _over_capacity(self, token: str | None) -> Response | None:
        """The refusal of a new connection at the upgrade when the process (HTTP 503) or its
        token (HTTP 429) already holds its maximum of connections; None to let it in."""
        s = self.settings
        if len(self.connections) >= s.max_connections:
            self.metrics.refused.labels("process_full").inc()
            body = f"this gateway serves {s.max_connections} connections at most; retry later\n"
            return _response(HTTPStatus.SERVICE_UNAVAILABLE, body.encode(), "text/plain")
        if s.auth and token and self._per_token.get(token, 0) >= s.max_connections_per_token:
            self.metrics.refused.labels("token_full").inc()
            body = f"at most {s.max_connections_per_token} connections per token\n"
            return _response(HTTPStatus.TOO_MANY_REQUESTS, body.encode(), "text/plain")
        return None

    def health(self) -> dict[str, Any]:
        alerts = None if self._alerts is None else self._alerts.ready.is_set()
        ok = self.stream_ok and alerts is not False
        return {
            "status": "ok" if ok else "degraded",
            "stream": self.stream_ok,
            "alerts": alerts,
            "last_seq": self.router.last_seq,
            "connections": len(self.connections),
        }

    # -- websocket -----------------------------------------------------------------------
    def _authenticate(self, ws: ServerConnection) -> tuple[Grant, str | None]:
        if not self.settings.auth:
            return Grant("anonymous", frozenset({ALL_REGIONS}), 2**62), None
        token = _token_of(ws.request) if ws.request is not None else None
        if not token:
            raise AuthError("a token is required (?token=... or Authorization: Bearer)")
        assert self.settings.secret is not None
        return verify_token(self.settings.secret, token, self.wall_clock()), token

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            grant, token = self._authenticate(ws)
        except AuthError as exc:
            self.metrics.refused.labels("unauthorized").inc()
            await _refuse(ws, "UNAUTHORIZED", str(exc), CLOSE_UNAUTHORIZED, "unauthorized")
            return
        # upgrades that raced past _over_capacity together: the exact count decides
        refusal = self._over_capacity(token)
        if refusal is not None:
            process = refusal.status_code == HTTPStatus.SERVICE_UNAVAILABLE
            await _refuse(
                ws,
                "TOO_MANY_CONNECTIONS",
                (refusal.body or b"").decode().strip(),
                CLOSE_TRY_AGAIN_LATER if process else CLOSE_RATE_LIMITED,
                "too many connections",
            )
            return
        conn = Connection(self, ws, grant, token)
        self.connections.add(conn)
        if token is not None:
            self._per_token[token] = self._per_token.get(token, 0) + 1
        self.metrics.connections.inc()
        if self.settings.auth:
            self._arm_expiry(conn)
        try:
            async for message in ws:
                if conn.closing:
                    break
                await self._on_message(conn, message)
        except ConnectionClosed:
            pass
        finally:
            conn.stop()
            for sub in conn.subs.values():
                self.router.remove(sub)
            self.metrics.subscriptions.dec(len(conn.subs))
            conn.subs.clear()
            conn.closing = True
            self.metrics.dropped.inc(conn.queue.drop_all())
            self.connections.discard(conn)
            if conn.token is not None:
                left = self._per_token.pop(conn.token, 1) - 1
                if left > 0:
                    self._per_token[conn.token] = left
            self.metrics.connections.dec()

    def _arm_expiry(self, conn: Connection) -> None:
        """Close ``conn`` when its token expires (a timer per connection: nothing per message;
        re-armed if it fires early, the wall clock having been set back)."""
        left_s = conn.grant.expires_s - self.wall_clock()
        if left_s <= 0:
            self._expire(conn)
        elif left_s < 10 * 365 * 86400:
            conn.expiry = asyncio.get_running_loop().call_later(left_s, self._expire, conn)

    def _expire(self, conn: Connection) -> None:
        conn.expiry = None
        if conn.closing:
            return
        if conn.grant.expires_s > self.wall_clock():
            self._arm_expiry(conn)
            return
        conn.closing = True
        self.metrics.expired.inc()
        self.metrics.dropped.inc(conn.queue.drop_all())
        asyncio.get_running_loop().create_task(
            _refuse(
                conn.ws,
                "TOKEN_EXPIRED",
                "your token has expired; reconnect with a new one",
                CLOSE_UNAUTHORIZED,
                "token expired",
                self.settings.close_timeout_s,
            )
        )

    async def _on_message(self, conn: Connection, message: str | bytes) -> None:
        now = self.clock()
        if not conn.bucket.allow(now):
            conn.strikes += 1
            conn.error(
                "RATE_LIMITED",
                f"at most {self.settings.rate_per_s:g} messages/s (a snapshot counts one per "
                f"{self.settings.read_cost_trucks} trucks it reads)",
                retry_after_ms=math.ceil(conn.bucket.wait_s(now) * 1000),
            )
            if conn.strikes > 10 * self.settings.rate_burst:
                await conn.ws.close(CLOSE_RATE_LIMITED, "rate limited")
            return
        conn.strikes = 0
        msg: Any = None
        try:
            try:
                msg = orjson.loads(message)
            except orjson.JSONDecodeError:
                raise ClientError("BAD_REQUEST", "malformed JSON") from None
            if not isinstance(msg, dict):
                raise ClientError("BAD_REQUEST", "a message is a JSON object with an op")
            op = msg.get("op")
            if op == "subscribe":
                await self._subscribe(conn, msg)
            elif op == "unsubscribe":
                self._unsubscribe(conn, _sub_id(msg))
            elif op == "resume":
                await self._resume(conn, msg.get("since"))
            elif op == "delays":
                self._watch_delays(conn, msg)
            elif op == "ping":
                conn.enqueue(None, frames.encode({"type": "pong", "seq": self.router.last_seq}))
            else:
                raise ClientError(
                    "BAD_REQUEST",
                    f"unknown op {op!r}; ops are subscribe, unsubscribe, resume, delays, ping",
                )
        except ClientError as exc:
            extra = (
                {"sub": msg["id"]}
                if isinstance(msg, dict) and isinstance(msg.get("id"), str)
                else {}
            )
            conn.error(exc.code, exc.message, **extra)
        except _Forbidden as exc:
            self.metrics.refused.labels("forbidden").inc()
            conn.closing = True
            await _refuse(conn.ws, "FORBIDDEN", str(exc), CLOSE_FORBIDDEN, "forbidden")
        except (ConnectionClosed, asyncio.CancelledError):
            raise
        except Exception:  # a bug of ours must not take the client (or the server) down
            log.exception("handling %r", message[:200])
            conn.error("INTERNAL", "the gateway failed on this message; it was ignored")

    def _allowed_area(self, conn: Connection, flt: Filter) -> BaseGeometry | None:
        """The area the token lets this filter see; _Forbidden if none of it."""
        grant = conn.grant
        if grant.everything:
            return None
        if flt.kind == "region" and flt.name not in grant.regions:
            raise _Forbidden(
                f"region {flt.name} is not in your token (allowed: {sorted(grant.regions)})"
            )
        allowed = self.areas.union_of(grant.regions)
        if flt.envelope is not None:
            shape = flt.geometry if flt.geometry is not None else shapely_box(*flt.envelope)
            if not allowed.intersects(shape):
                raise _Forbidden(f"the filter lies outside your regions {sorted(grant.regions)}")
        return allowed

    async def _subscribe(self, conn: Connection, msg: dict[str, Any]) -> None:
        sub_id = _sub_id(msg)
        flt = parse_filter(msg.get("filter"), self.areas)
        replacing = sub_id in conn.subs
        if not replacing and len(conn.subs) >= self.settings.max_subscriptions:
            raise ClientError(
                "TOO_MANY_SUBSCRIPTIONS",
                f"at most {self.settings.max_subscriptions} subscriptions per connection",
            )
        since = msg.get("since")
        if since is not None and not isinstance(since, str):
            raise ClientError("BAD_REQUEST", "since must be a seq string")
        if since is None and not replacing:
            since = conn.pending_since
        if replacing:
            conn.pending_since = None
        regions = None if conn.grant.everything else conn.grant.regions
        sub = Subscription(conn, sub_id, flt, self._allowed_area(conn, flt), regions)
        if since is not None and self.router.can_replay(since):
            self._install(conn, sub)
            self._charge(conn, self.router.replay(sub, since))
            return
        await self._send_snapshot(conn, sub, install=True)

    def _charge(self, conn: Connection, reads: int) -> None:
        """Charge ``reads`` (trucks read from Redis, positions replayed) to the client's rate
        limit: the expensive requests cost what they read, so a client repeating them at the
        message rate is throttled like a flood of messages."""
        if reads:
            conn.bucket.charge(self.clock(), reads / self.settings.read_cost_trucks)

    def _install(self, conn: Connection, sub: Subscription) -> None:
        old = conn.subs.get(sub.sub_id)
        if old is not None:
            self.router.remove(old)
            conn.queue.drop_where(lambda k: isinstance(k, tuple) and k[0] == sub.sub_id)
        else:
            self.metrics.subscriptions.inc()
        conn.subs[sub.sub_id] = sub
        self.router.add(sub)

    async def _send_snapshot(self, conn: Connection, sub: Subscription, install: bool) -> None:
        """Snapshot from Redis, then (with no await in between) install the subscription and
        replay what the stream brought while Redis answered, so nothing falls in the gap."""
        assert self.redis is not None
        if conn.bucket.in_debt(self.clock()):  # an earlier read of this message used it up
            raise ClientError(
                "RATE_LIMITED",
                "the snapshots you asked for read more trucks than your rate allows; "
                "subscribe again later",
            )
        seq0 = self.router.last_seq
        trucks, truncated, read = await redis_io.snapshot(
            self.redis, sub, self.settings.geo_key, self.settings.snapshot_limit
        )
        self.metrics.snapshots.inc()
        self.metrics.snapshot_reads.inc(read)
        self._charge(conn, read)
        if conn.closing:
            return
        if install:
            self._install(conn, sub)
        elif conn.subs.get(sub.sub_id) is not sub:
            return  # replaced or removed meanwhile
        self.router.learn(trucks)
        frame = frames.snapshot(sub.sub_id, trucks, seq0)
        if truncated:
            frame = frame[:-1] + b',"truncated":true}'
        conn.queue.drop_where(lambda k: isinstance(k, tuple) and k[0] == sub.sub_id)
        conn.enqueue((SNAPSHOT_KEY, sub.sub_id), frame)
        if self.router.can_replay(seq0):
            self.router.replay(sub, seq0)

    def _unsubscribe(self, conn: Connection, sub_id: str) -> None:
        sub = conn.subs.pop(sub_id, None)
        if sub is None:
            raise ClientError("UNKNOWN_SUBSCRIPTION", f"no subscription {sub_id!r}")
        self.router.remove(sub)
        self.metrics.subscriptions.dec()
        conn.pending_since = None
        conn.queue.drop_where(lambda k: isinstance(k, tuple) and k[0] == sub_id)
        conn.enqueue(None, frames.encode({"type": "unsubscribed", "sub": sub_id}))

    async def _resume(self, conn: Connection, since: Any) -> None:
        if not isinstance(since, str) or not since:
            raise ClientError("BAD_REQUEST", "resume needs since: the last seq you saw")
        if not conn.subs:
            conn.pending_since = since  # for the subscribes that follow (a reconnect)
            return
        for sub in list(conn.subs.values()):
            if self.router.can_replay(since):
                self._charge(conn, self.router.replay(sub, since))
                continue
            try:
                await self._send_snapshot(conn, sub, install=False)
            except ClientError as exc:  # this subscription missed updates: say which
                conn.error(exc.code, exc.message, sub=sub.sub_id)

    def _watch_delays(self, conn: Connection, msg: dict[str, Any]) -> None:
        conn.watch_delays = msg.get("watch", True) is not False
        if not conn.watch_delays:
            return
        known = (
            self._delays_frame
            if conn.grant.everything
            else self._regional_delays.get(conn.grant.regions)
        )
        if known is not None:
            conn.enqueue(DELAYS_KEY, known)
        else:
            self._tasks.append(asyncio.create_task(self._delays_now(conn)))

    async def _delays_now(self, conn: Connection) -> None:
        assert self.redis is not None
        s = self.settings
        if conn.grant.everything:
            rows = await self.redis.zrevrange(s.delays_key, 0, s.delays_limit - 1, withscores=True)
            frame = delays_frame(rows)
        else:
            frame = (await self._regional_delays_frames({conn.grant.regions}))[conn.grant.regions]
        conn.enqueue(DELAYS_KEY, frame)


class _Forbidden(GatewayError):
    """A subscription outside the token's regions (closes the connection)."""


async def _refuse(
    ws: ServerConnection,
    code: str,
    message: str,
    close_code: int,
    reason: str,
    timeout_s: float | None = None,
) -> None:
    """Send an error frame straight to the socket (not through the queue), then close."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.send(frames.error(code, message), text=True), timeout_s)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(close_code, reason), timeout_s)


def _token_of(request: Request) -> str | None:
    """The token of a websocket upgrade: ``?token=`` or ``Authorization: Bearer``."""
    query = parse_qs(urlsplit(request.path).query)
    if query.get("token"):
        return query["token"][0]
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip() or None
    return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _sub_id(msg: dict[str, Any]) -> str:
    sub_id = msg.get("id")
    if not isinstance(sub_id, str) or not 0 < len(sub_id) <= MAX_SUB_ID or not sub_id.isprintable():
        raise ClientError(
            "BAD_REQUEST", f"id must be a string of 1-{MAX_SUB_ID} printable characters"
        )
    return sub_id


def delays_frame(rows: list[tuple[bytes, float]]) -> bytes:
    """The `delays` sorted set as a frame, most severe first."""
    shipments = []
    for member, score in rows:
        name = member.decode() if isinstance(member, bytes) else str(member)
        shipments.append({"shipment_id": shipment_of_delay_member(name), "severity": int(score)})
    return frames.encode({"type": "delays", "shipments": shipments})


def static_file(path: str) -> Path | None:
    """The file for a URL path: the page, its static assets, or the shared GeoJSON."""
    if path in ("/", "/index.html"):
        return STATIC_DIR / "index.html"
    if path in DATA_FILES:
        return DATA_FILES[path]
    if path.startswith("/static/"):
        candidate = (STATIC_DIR / path.removeprefix("/static/")).resolve()
        if candidate.is_relative_to(STATIC_DIR) and candidate.is_file():
            return candidate
    return None


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            # every response: a page or asset opened directly gets the same restrictions
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            # the page's first URL carries the token until the page removes it
            ("Referrer-Policy", "no-referrer"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


@contextlib.asynccontextmanager
async def running(settings: GatewaySettings, **kwargs: Any) -> AsyncIterator[Gateway]:
    """A started gateway for the duration of the block (tests, the benchmark)."""
    gw = Gateway(settings, **kwargs)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


class BackgroundGateway:
    """A gateway on its own event loop in a thread, for synchronous callers (browser test)."""

    def __init__(self, settings: GatewaySettings, **kwargs: Any) -> None:
        self.settings = settings
        self.kwargs = kwargs
        self.gateway: Gateway | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self, timeout_s: float = 30.0) -> Gateway:
        self._thread.start()

        async def boot() -> Gateway:
            gw = Gateway(self.settings, **self.kwargs)
            await gw.start()
            return gw

        self.gateway = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout_s)
        return self.gateway

    def stop(self) -> None:
        if self.gateway is not None:
            asyncio.run_coroutine_threadsafe(self.gateway.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
