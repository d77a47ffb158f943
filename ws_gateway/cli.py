"""`fleetpulse gateway`: run the websocket gateway, issue access tokens."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

import click

from udfs.contract import DEFAULT_TOPICS
from udfs.kafka_properties import KafkaProperties, KafkaPropertyError, kafka_properties_options
from ws_gateway import GatewayError
from ws_gateway.geo import REGION_NAMES
from ws_gateway.tokens import ALL_REGIONS, sign_token

SECRET_ENV = "FLEETPULSE_GATEWAY_SECRET"
GEOFENCES_ENV = "FLEETPULSE_GEOFENCES_FILE"  # the tracking job's variable: one file for both


def _checked_geofences_file(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Read and check the file before serving (exit status 2 naming the file and feature)."""
    if value:
        from udfs.geo_files import GeoFileError
        from ws_gateway.geo import areas_for

        try:
            areas_for(value)
        except GeoFileError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
    return value


@click.group(context_settings={"show_default": True})
def gateway() -> None:
    """Websocket gateway: live truck positions and alerts for map clients."""


@gateway.command()
@click.option(
    "--redis-url",
    default="redis://127.0.0.1:6379/0",
    envvar="FLEETPULSE_REDIS_URL",
    show_envvar=True,
    show_default=True,
    help="Redis holding the live positions (the tracking job's output): "
    "redis://[:PASSWORD@]HOST:PORT/DB, or rediss:// for TLS; of a Redis Cluster, any node's "
    "URL. The variable keeps the password out of the process list.",
)
@click.option(
    "--bootstrap",
    default=None,
    metavar="HOST:PORT",
    help="Kafka bootstrap for fleet.alerts (no alerts without it).",
)
@kafka_properties_options
@click.option(
    "--alerts-topic",
    default=DEFAULT_TOPICS.alerts,
    show_default=True,
    help="Kafka topic the alerts are read from.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 for clients outside the host or container).",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=int,
    help="TCP port of the map page, websocket, /healthz and /metrics.",
)
@click.option(
    "--metrics-port",
    default=None,
    type=int,
    help="Also serve /metrics here (it is always on --port too).",
)
@click.option(
    "--secret",
    envvar=SECRET_ENV,
    show_envvar=True,
    default=None,
    help="Token signing secret (required unless --no-auth).",
)
@click.option("--no-auth", is_flag=True, help="Accept clients without a token (local dev only).")
@click.option(
    "--allowed-origin",
    "allowed_origins",
    multiple=True,
    show_default="only the gateway's own",
    help="Browser origin allowed besides the gateway's own (repeat); '*' allows any.",
)
@click.option(
    "--max-subscriptions",
    default=16,
    show_default=True,
    type=int,
    help="Subscriptions one websocket connection may hold at once.",
)
@click.option(
    "--rate",
    "rate_per_s",
    default=20.0,
    show_default=True,
    type=float,
    help="Client messages per second allowed (burst 3x).",
)
@click.option(
    "--read-cost-trucks",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="A snapshot costs one message of the rate limit per this many trucks it reads "
    "(a replay from memory: per this many positions it replays).",
)
@click.option(
    "--max-connections",
    default=20_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Websocket connections this process serves at once; more are refused (HTTP 503).",
)
@click.option(
    "--max-connections-per-token",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Connections one token may hold at once; more are refused (HTTP 429).",
)
@click.option(
    "--max-lag-s",
    default=5.0,
    show_default=True,
    type=float,
    help="A client whose queue waits longer is told it is lagging and closed.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    help="Python logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
)
@click.option(
    "--event-loop",
    type=click.Choice(["asyncio", "uvloop", "auto"]),
    default="asyncio",
    show_default=True,
    help="uvloop (not a dependency: install it) measured no better; auto: uvloop when installed.",
)
@click.option(
    "--flush-interval-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="Hold client frames this long so more share one socket write (0: none).",
)
@click.option(
    "--xread-count",
    default=5000,
    show_default=True,
    type=int,
    help="Stream entries read (and routed) per batch at most.",
)
@click.option(
    "--gc-tune/--no-gc-tune",
    default=True,
    show_default=True,
    help="Freeze start-up objects and collect the young generation less often.",
)
@click.option(
    "--ping-interval-s",
    default=20.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Keepalive ping period; a client that does not answer within it is closed.",
)
@click.option(
    "--spread-keepalive/--no-spread-keepalive",
    default=True,
    show_default=True,
    help="Start each connection's pings at a random point of the period, so clients "
    "that connected together are not all pinged together.",
)
@click.option(
    "--geofences-file",
    envvar=GEOFENCES_ENV,
    show_envvar=True,
    default="",
    show_default="the packaged hubs",
    callback=_checked_geofences_file,
    help="Geofences of the `geofence` filter, any format geopandas reads (the tracking "
    "job's --geofences-file; docs/geography.md).",
)
def run(
    redis_url: str,
    bootstrap: str | None,
    alerts_topic: str,
    host: str,
    port: int,
    metrics_port: int | None,
    secret: str | None,
    no_auth: bool,
    allowed_origins: tuple[str, ...],
    max_subscriptions: int,
    rate_per_s: float,
    read_cost_trucks: int,
    max_connections: int,
    max_connections_per_token: int,
    max_lag_s: float,
    log_level: str,
    event_loop: str,
    flush_interval_ms: float,
    xread_count: int,
    gc_tune: bool,
    ping_interval_s: float,
    spread_keepalive: bool,
    geofences_file: str,
    kafka_properties: KafkaProperties,
) -> None:
    """Serve the map page, /healthz, /metrics and the websocket on one port."""
    from ws_gateway.server import Gateway
    from ws_gateway.settings import GatewaySettings

    try:
        kafka_properties.kafka_python()  # the alert reader's client takes only some
    except KafkaPropertyError as exc:
        raise click.UsageError(str(exc)) from None
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = GatewaySettings(
        redis_url=redis_url,
        host=host,
        port=port,
        bootstrap=bootstrap,
        alerts_topic=alerts_topic,
        kafka_properties=kafka_properties,
        metrics_port=metrics_port,
        secret=secret,
        auth=not no_auth,
        allowed_origins=allowed_origins,
        max_subscriptions=max_subscriptions,
        rate_per_s=rate_per_s,
        rate_burst=3 * rate_per_s,
        read_cost_trucks=read_cost_trucks,
        max_connections=max_connections,
        max_connections_per_token=max_connections_per_token,
        max_lag_s=max_lag_s,
        flush_interval_s=flush_interval_ms / 1000.0,
        stream_read_count=xread_count,
        ping_interval_s=ping_interval_s,
        spread_keepalive=spread_keepalive,
        geofences_file=geofences_file,
    )
    try:
        gw = Gateway(settings)
        with asyncio.Runner(loop_factory=_loop_factory(event_loop)) as runner:
            runner.run(gw.serve_forever(after_start=_tune_gc if gc_tune else None))
    except GatewayError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise click.ClickException("uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _tune_gc() -> None:
    # Everything loaded so far (region shapes, modules) lives for the whole process: keep it
    # out of every collection. The hot path allocates many short-lived objects (frames, keys,
    # stream entries); a larger young generation collects them less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@gateway.command()
@click.option(
    "--secret",
    envvar=SECRET_ENV,
    show_envvar=True,
    required=True,
    help="Token signing secret (the gateway's --secret).",
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    type=click.Choice([*REGION_NAMES, ALL_REGIONS], case_sensitive=False),
    help="Region the holder may see (repeat); default all ('*').",
)
@click.option(
    "--subject", default="map-user", show_default=True, help="Who the token is for (shown in logs)."
)
@click.option(
    "--ttl-s",
    default=12 * 3600,
    show_default=True,
    type=int,
    help="Seconds until the token expires.",
)
@click.option(
    "--url",
    "base_url",
    default=None,
    help="Print a map URL with the token (e.g. http://127.0.0.1:8765/).",
)
def token(
    secret: str, regions: tuple[str, ...], subject: str, ttl_s: int, base_url: str | None
) -> None:
    """Issue an HMAC-signed token for the given regions; prints it (or a map URL)."""
    chosen = [r.upper() for r in regions] or [ALL_REGIONS]
    tok = sign_token(secret, subject, chosen, int(time.time()) + ttl_s)
    click.echo(f"{base_url.rstrip('/')}/?token={tok}" if base_url else tok)
