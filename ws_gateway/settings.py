"""The gateway's one frozen settings object, built by the CLI (or a test) and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from udfs.contract import DEFAULT_TOPICS, DELAYS, POSITIONS_STREAM, TRUCKS_GEO
from udfs.kafka_properties import NONE, KafkaProperties


@dataclass(frozen=True)
class GatewaySettings:
    redis_url: str
    host: str = "127.0.0.1"
    port: int = 8765
    bootstrap: str | None = None  # Kafka, for fleet.alerts; None: no alerts
    alerts_topic: str = DEFAULT_TOPICS.alerts
    kafka_properties: KafkaProperties = NONE  # the user's Kafka client properties (security)
    min_alert_severity: str = "critical"
    secret: str | None = None
    auth: bool = True
    allowed_origins: tuple[str, ...] = ()  # besides the gateway's own http://host:port
    metrics_port: int | None = None  # /metrics is always on the main port too
    stream_key: str = POSITIONS_STREAM
    geo_key: str = TRUCKS_GEO
    delays_key: str = DELAYS
    geofences_file: str = ""  # the geofence filter's fences ('': the packaged hubs)
    # limits
    max_frame_bytes: int = 64 * 1024
    max_subscriptions: int = 16
    rate_per_s: float = 20.0
    rate_burst: float = 60.0
    # a snapshot (subscribe, or resume beyond the replay history) costs one message per this
    # many trucks it reads from Redis, a replay one per this many history entries it scans
    read_cost_trucks: int = 1000
    max_connections: int = 20_000  # per process; more are refused at the upgrade (HTTP 503)
    max_connections_per_token: int = 20  # per token string (auth on); more: HTTP 429
    delays_region_scan: int = 2000  # regional tokens: their shipments among this many worst
    max_queue_items: int = 20_000
    max_lag_s: float = 5.0
    write_limit_bytes: int = 64 * 1024
    snapshot_limit: int = 50_000
    replay_entries: int = 100_000
    delays_poll_s: float = 2.0
    delays_limit: int = 100
    close_timeout_s: float = 2.0
    # websocket keepalive period; a client that does not answer a ping within it is closed
    ping_interval_s: float = 20.0
    spread_keepalive: bool = True  # each connection's pings start at a random point of the cycle
    # performance
    flush_interval_s: float = 0.0  # >0: hold frames this long so more share one socket write
    stream_read_count: int = 5000  # XREAD COUNT: entries routed per batch at most
