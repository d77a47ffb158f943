"""``fleetpulse exporter``: serve the cross-component metrics until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading

import click

from fleetpulse.exporter import ExporterError
from fleetpulse.exporter.readings import DEFAULT_REGIONS
from fleetpulse.exporter.settings import DEFAULT_PORT, ExporterSettings
from udfs.contract import DEFAULT_TOPICS
from udfs.kafka_properties import KafkaProperties, kafka_properties_options
from udfs.redis_url import redacted


@click.command(context_settings={"show_default": True})
@click.option(
    "--host",
    default="127.0.0.1",
    envvar="FLEETPULSE_EXPORTER_HOST",
    show_envvar=True,
    help="Address /metrics and /healthz listen on (0.0.0.0 for a scraper outside the host).",
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    envvar="FLEETPULSE_EXPORTER_PORT",
    show_envvar=True,
    help="TCP port of /metrics and /healthz (0: any free port, printed at start).",
)
@click.option(
    "--bootstrap",
    default="127.0.0.1:9092",
    envvar="FLEETPULSE_BOOTSTRAP",
    show_envvar=True,
    help="Kafka bootstrap HOST:PORT: consumer lag, alerts and dead letters.",
)
@kafka_properties_options
@click.option(
    "--redis-url",
    default="redis://127.0.0.1:6379/0",
    envvar="FLEETPULSE_REDIS_URL",
    show_envvar=True,
    help="Redis the jobs write: regions, delays, positions (redis://[:PASSWORD@]HOST:PORT/DB, "
    "or rediss:// for TLS; of a Redis Cluster, any node's URL).",
)
@click.option(
    "--flink-url",
    "flink_urls",
    multiple=True,
    envvar="FLEETPULSE_EXPORTER_FLINK_URLS",
    show_envvar=True,
    show_default="none: no Flink job gauges",
    help="[http://]HOST:PORT of a Flink REST API whose jobs to report; repeat for several "
    "(environment: space-separated).",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    envvar="FLEETPULSE_EXPORTER_GROUPS",
    show_envvar=True,
    show_default="every group of the cluster",
    help="Consumer group whose lag to report; repeat for several (environment: space-separated).",
)
@click.option(
    "--alerts-topic",
    default=DEFAULT_TOPICS.alerts,
    envvar="FLEETPULSE_ALERTS_TOPIC",
    show_envvar=True,
    help="Kafka topic of the alerts (counted from its end at start-up).",
)
@click.option(
    "--dlq-topic",
    default=DEFAULT_TOPICS.dlq,
    envvar="FLEETPULSE_DLQ_TOPIC",
    show_envvar=True,
    help="Kafka topic of the dead letters (counted from its end at start-up).",
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    default=DEFAULT_REGIONS,
    envvar="FLEETPULSE_EXPORTER_REGIONS",
    show_envvar=True,
    help="Region whose region:{REGION} hash to read; repeat for several.",
)
@click.option(
    "--cache-seconds",
    "cache_s",
    default=5.0,
    envvar="FLEETPULSE_EXPORTER_CACHE_SECONDS",
    show_envvar=True,
    help="Scrapes within this many seconds of a reading get that reading (Redis, Kafka and "
    "Flink are read at most once per this interval).",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=3.0,
    envvar="FLEETPULSE_EXPORTER_TIMEOUT",
    show_envvar=True,
    help="Seconds one source (Redis, Kafka, a Flink REST API) may take to answer a reading.",
)
@click.option(
    "--label-limit",
    default=100,
    envvar="FLEETPULSE_EXPORTER_LABEL_LIMIT",
    show_envvar=True,
    help="Distinct values per label of the alert and dead-letter counters; more count as 'other'.",
)
@click.option(
    "--log-level",
    default="INFO",
    envvar="FLEETPULSE_LOG_LEVEL",
    show_envvar=True,
    help="Python logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
)
def exporter(
    host: str,
    port: int,
    bootstrap: str,
    redis_url: str,
    flink_urls: tuple[str, ...],
    groups: tuple[str, ...],
    alerts_topic: str,
    dlq_topic: str,
    regions: tuple[str, ...],
    cache_s: float,
    timeout_s: float,
    label_limit: int,
    log_level: str,
    kafka_properties: KafkaProperties,
) -> None:
    """Serve consumer lag, position freshness, region and delay gauges, Flink job health and
    the alerts and dead letters seen, as Prometheus metrics on /metrics (and /healthz)."""
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise click.BadParameter(f"unknown log level {log_level!r}", param_hint="--log-level")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = ExporterSettings(
            host=host,
            port=port,
            bootstrap=bootstrap,
            redis_url=redis_url,
            flink_urls=tuple(flink_urls),
            groups=tuple(groups),
            alerts_topic=alerts_topic,
            dlq_topic=dlq_topic,
            regions=tuple(r.upper() for r in regions),
            cache_s=cache_s,
            timeout_s=timeout_s,
            label_limit=label_limit,
            kafka_properties=kafka_properties,
        ).validate()
    except ExporterError as exc:
        raise click.ClickException(str(exc)) from None

    from fleetpulse.exporter.service import Exporter

    try:
        service = Exporter(settings)
    except OSError as exc:  # the port is taken, the address is not this host's
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.start()
    click.echo(
        f"fleetpulse exporter on http://{host}:{service.server.port}/metrics "
        f"(Kafka {bootstrap}, Redis {redacted(redis_url)}, Flink {' '.join(flink_urls) or 'none'})",
        err=True,
    )
    stop.wait()
    service.stop()
