"""`fleetpulse up`, `down`, `status` and `dlq`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fleetpulse import PlatformError
from fleetpulse.config import UpSettings
from fleetpulse.exporter.evaluate import (
    DEFAULT_MAX_CHECKPOINT_AGE_S,
    DEFAULT_MAX_LAG_RECORDS,
    DEFAULT_MAX_RESTARTS,
)
from fleetpulse.paths import default_data_dir
from fleetpulse.services.redis_server import PASSWORD_FILE
from udfs.contract import DEFAULT_TOPICS, region_key
from udfs.kafka_properties import KafkaProperties, KafkaPropertyError, kafka_properties_options
from udfs.redis_url import redacted

# every command shows its defaults in --help (also when invoked without the `fleetpulse` group)
CONTEXT_SETTINGS = {"show_default": True}

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    # the callable keeps the default's own FLEETPULSE_DATA_DIR lookup; click reads it first
    default=default_data_dir,
    envvar="FLEETPULSE_DATA_DIR",
    show_envvar=True,
    show_default="<project root>/.fleetpulse",
    help="Where all state lives: Kafka logs, Flink checkpoints, Redis dump, logs.",
)


@click.command(context_settings=CONTEXT_SETTINGS)
@data_dir_option
@click.option(
    "--flink-url",
    default="",
    envvar="FLEETPULSE_FLINK_URL",
    show_envvar=True,
    show_default="none: embedded MiniClusters",
    help="Submit the jobs to this Flink cluster (host:port of its REST API) with "
    "`flink run -py` instead of running them on an embedded MiniCluster.",
)
@click.option(
    "--kafka-port",
    default=9092,
    envvar="FLEETPULSE_KAFKA_PORT",
    show_envvar=True,
    show_default=True,
    help="Kafka broker (client listener) TCP port on 127.0.0.1.",
)
@click.option(
    "--kafka-controller-port",
    default=0,
    envvar="FLEETPULSE_KAFKA_CONTROLLER_PORT",
    show_envvar=True,
    show_default="the Kafka port + 1",
    help="KRaft controller listener TCP port (0: the Kafka port + 1).",
)
@click.option(
    "--redis-port",
    default=6379,
    envvar="FLEETPULSE_REDIS_PORT",
    show_envvar=True,
    show_default=True,
    help="Redis TCP port on 127.0.0.1.",
)
@click.option(
    "--gateway-port",
    default=8765,
    envvar="FLEETPULSE_GATEWAY_PORT",
    show_envvar=True,
    show_default=True,
    help="Websocket gateway TCP port: map page, websocket, /healthz and /metrics.",
)
@click.option(
    "--dispatcher-metrics-port",
    default=9252,
    envvar="FLEETPULSE_DISPATCHER_METRICS_PORT",
    show_envvar=True,
    show_default=True,
    help="TCP port of the alert dispatcher's Prometheus /metrics and /healthz.",
)
@click.option(
    "--receiver-port",
    default=9099,
    envvar="FLEETPULSE_RECEIVER_PORT",
    show_envvar=True,
    show_default=True,
    help="TCP port of the local alert receiver (the packaged configuration's webhook "
    "http://127.0.0.1:9099/alerts; another port sets FLEETPULSE_WEBHOOK_URL to match); "
    "`fleetpulse alerts tail` shows what it received.",
)
@click.option(
    "--tracking-metrics-port",
    default=9250,
    envvar="FLEETPULSE_TRACKING_METRICS_PORT",
    show_envvar=True,
    show_default=True,
    help="TCP port of the tracking job's Prometheus /metrics.",
)
@click.option(
    "--delay-metrics-port",
    default=9251,
    envvar="FLEETPULSE_DELAY_METRICS_PORT",
    show_envvar=True,
    show_default=True,
    help="TCP port of the delay job's Prometheus /metrics.",
)
@click.option(
    "--tracking-rest-port",
    default=8081,
    envvar="FLEETPULSE_TRACKING_REST_PORT",
    show_envvar=True,
    show_default=True,
    help="TCP port of the REST API / web UI of the tracking job's MiniCluster.",
)
@click.option(
    "--delay-rest-port",
    default=8082,
    envvar="FLEETPULSE_DELAY_REST_PORT",
    show_envvar=True,
    show_default=True,
    help="TCP port of the REST API / web UI of the delay job's MiniCluster.",
)
@click.option("--parallelism", default=1, show_default=True, help="Flink job parallelism.")
@click.option(
    "--pin-jobs/--no-pin-jobs",
    default=False,
    show_default=True,
    envvar="FLEETPULSE_PIN_JOBS",
    show_envvar=True,
    help="Run each embedded job (its MiniCluster JVM) on a CPU of its own: a job's "
    "Python operators share one interpreter lock, and handing it between "
    "cores is costly (the tracking job ran 1.24-1.79x faster pinned on 2 cores, "
    "docs/tracking.md). Not used with --flink-url.",
)
@click.option("--trucks", default=200, show_default=True, help="Simulated trucks.")
@click.option(
    "--speedup",
    default=300.0,
    show_default=True,
    help="Simulated event time runs this many times faster than the wall clock.",
)
@click.option(
    "--seed",
    default=42,
    show_default=True,
    help="Simulator random seed (the same seed generates the same fleet and events).",
)
@click.option("--no-simulator", is_flag=True, help="Start everything but the simulator.")
@click.option(
    "--alerting-config",
    default="",
    envvar="FLEETPULSE_ALERTING_CONFIG",
    show_envvar=True,
    show_default="the packaged demo configuration",
    help="Alert dispatcher YAML configuration file.",
)
@click.option(
    "--exporter-port",
    default=9108,
    envvar="FLEETPULSE_EXPORTER_PORT",
    show_envvar=True,
    help="TCP port of the fleetpulse exporter's /metrics and /healthz (consumer lag, "
    "freshness, Flink job health).",
)
@click.option(
    "--prometheus/--no-prometheus",
    default=False,
    envvar="FLEETPULSE_PROMETHEUS",
    show_envvar=True,
    help="Also run a Prometheus server (the machine's own `prometheus` binary) scraping every "
    "component, with the alert rules of deploy/prometheus/rules/; its configuration is "
    "generated into the data directory.",
)
@click.option(
    "--prometheus-port",
    default=9090,
    envvar="FLEETPULSE_PROMETHEUS_PORT",
    show_envvar=True,
    help="TCP port of the Prometheus server's UI and API (with --prometheus).",
)
@click.option(
    "--prometheus-bin",
    default="prometheus",
    envvar="FLEETPULSE_PROMETHEUS_BIN",
    show_envvar=True,
    help="The Prometheus executable (a name on PATH or a path), with --prometheus.",
)
def up(
    data_dir: Path,
    flink_url: str,
    kafka_port: int,
    kafka_controller_port: int,
    redis_port: int,
    gateway_port: int,
    dispatcher_metrics_port: int,
    receiver_port: int,
    tracking_metrics_port: int,
    delay_metrics_port: int,
    tracking_rest_port: int,
    delay_rest_port: int,
    parallelism: int,
    pin_jobs: bool,
    trucks: int,
    speedup: float,
    seed: int,
    no_simulator: bool,
    alerting_config: str,
    exporter_port: int,
    prometheus: bool,
    prometheus_port: int,
    prometheus_bin: str,
) -> None:
    """Start Kafka, Redis, the Flink jobs, the dispatcher, the gateway, the exporter and the
    simulator (and Prometheus, with --prometheus)."""
    from fleetpulse.supervisor import MonitoringSettings, Supervisor

    settings = UpSettings(
        data_dir=data_dir.resolve(),
        kafka_port=kafka_port,
        kafka_controller_port=kafka_controller_port or kafka_port + 1,
        redis_port=redis_port,
        gateway_port=gateway_port,
        dispatcher_metrics_port=dispatcher_metrics_port,
        receiver_port=receiver_port,
        tracking_metrics_port=tracking_metrics_port,
        delay_metrics_port=delay_metrics_port,
        tracking_rest_port=tracking_rest_port,
        delay_rest_port=delay_rest_port,
        flink_url=flink_url,
        parallelism=parallelism,
        pin_jobs=pin_jobs,
        simulate=not no_simulator,
        trucks=trucks,
        speedup=speedup,
        seed=seed,
        alerting_config=alerting_config,
    )
    monitoring = MonitoringSettings(
        exporter_port=exporter_port,
        prometheus=prometheus,
        prometheus_port=prometheus_port,
        prometheus_bin=prometheus_bin,
    )
    sup = Supervisor(
        settings, say=lambda m: click.echo(f"[fleetpulse] {m}", err=True), monitoring=monitoring
    )
    try:
        sup.start_all()
    except PlatformError as exc:
        sup.stop_all()
        raise click.ClickException(str(exc)) from None
    except BaseException:
        sup.stop_all()
        raise
    click.echo("")
    click.echo("fleetpulse is up. Where to look:")
    click.echo(f"  Kafka        {settings.kafka_bootstrap}")
    secret = settings.data_dir / PASSWORD_FILE
    click.echo(
        f"  Redis        {redacted(sup.settings.redis_url)}   "
        f'(REDISCLI_AUTH="$(cat {secret})" redis-cli -p {redis_port} hgetall {region_key("WEST")})'
    )
    for c in sup.components:
        for label, url in c.urls.items():
            click.echo(f"  {c.name:<17} {label:<8} {url}")
    if any(c.name == "alert-receiver" for c in sup.components):
        from alerting.received import default_path

        where = settings.received_file
        tail = "fleetpulse alerts tail --follow"
        click.echo(
            f"  alerts       {tail}" + ("" if where == default_path() else f" --file {where}")
        )
    click.echo(f"  logs         {settings.log_dir}")
    click.echo("Ctrl-C or `fleetpulse down` stops everything.")
    sys.exit(sup.watch())


@click.command(context_settings=CONTEXT_SETTINGS)
@data_dir_option
def down(data_dir: Path) -> None:
    """Stop a running `fleetpulse up` and everything it started."""
    from fleetpulse.supervisor import stop_running

    settings = UpSettings(data_dir=data_dir.resolve())
    if stop_running(settings.state_file):
        click.echo("fleetpulse stopped")
    else:
        click.echo(f"fleetpulse is not running from {settings.data_dir}")


@click.command(context_settings=CONTEXT_SETTINGS)
@data_dir_option
@click.option(
    "--max-lag",
    default=DEFAULT_MAX_LAG_RECORDS,
    envvar="FLEETPULSE_STATUS_MAX_LAG",
    show_envvar=True,
    help="Exit 2 when a job's (or the dispatcher's) consumer group is more than this many "
    "records behind on a topic.",
)
@click.option(
    "--max-checkpoint-age",
    default=DEFAULT_MAX_CHECKPOINT_AGE_S,
    envvar="FLEETPULSE_STATUS_MAX_CHECKPOINT_AGE",
    show_envvar=True,
    help="Exit 2 when a job's last completed checkpoint (its start, if none yet) is older "
    "than this many seconds.",
)
@click.option(
    "--max-restarts",
    default=DEFAULT_MAX_RESTARTS,
    envvar="FLEETPULSE_STATUS_MAX_RESTARTS",
    show_envvar=True,
    help="Exit 2 when a job has restarted more often than this since it was submitted "
    "(Flink's numRestarts).",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=3.0,
    envvar="FLEETPULSE_STATUS_TIMEOUT",
    show_envvar=True,
    help="Seconds Kafka, Redis or a Flink REST API may take to answer.",
)
def status(
    data_dir: Path, max_lag: int, max_checkpoint_age: float, max_restarts: int, timeout_s: float
) -> None:
    """Health of each component of a running `fleetpulse up`, with each job's restarts, last
    checkpoint and consumer lag and the newest position's age. Exit 0: all well; 1: a
    component is down or still starting; 2: all up, but a threshold is passed; 3: not running."""
    from fleetpulse.exporter import ExporterError
    from fleetpulse.exporter.evaluate import Thresholds
    from fleetpulse.exporter.status import exit_code, report, take_readings
    from fleetpulse.services.process import pid_alive
    from fleetpulse.supervisor import component_health, read_state

    try:
        thresholds = Thresholds(max_lag, max_checkpoint_age, max_restarts).validate()
    except ExporterError as exc:
        raise click.ClickException(str(exc)) from None
    if not timeout_s > 0:
        raise click.ClickException(f"--timeout must be more than 0 s, got {timeout_s}")
    settings = UpSettings(data_dir=data_dir.resolve())
    state = read_state(settings.state_file)
    if not state or not pid_alive(int(state["supervisor_pid"])):
        click.echo(f"fleetpulse is not running from {settings.data_dir}")
        sys.exit(3)
    healthy = bool(state.get("ready"))
    if not healthy:
        click.echo("fleetpulse is starting")
    readings = take_readings(state, timeout_s)
    view = report(state, readings, thresholds) if readings is not None else None
    for name, info in state["components"].items():
        ok, detail = component_health(name, info)
        healthy &= ok
        click.echo(f"{name:<18} {'OK  ' if ok else 'DOWN'}  {detail}")
        if view is not None and name in view.details:
            click.echo(f"{'':<18}       {view.details[name]}")
    problems = view.problems if view is not None else []
    for line in view.extra if view is not None else []:
        click.echo(line)
    for problem in problems:
        click.echo(f"PROBLEM  {problem}")
    sys.exit(exit_code(not healthy, problems))


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--bootstrap",
    default="127.0.0.1:9092",
    envvar="FLEETPULSE_BOOTSTRAP",
    show_envvar=True,
    show_default=True,
    help="Kafka bootstrap HOST:PORT.",
)
@kafka_properties_options
@click.option(
    "--topic", default=DEFAULT_TOPICS.dlq, show_default=True, help="Dead-letter Kafka topic."
)
@click.option(
    "--follow/--no-follow",
    default=False,
    show_default=True,
    help="Keep waiting for new dead letters.",
)
def dlq(bootstrap: str, topic: str, follow: bool, kafka_properties: KafkaProperties) -> None:
    """Print dead letters: source, partition/offset, reason and detail."""
    from kafka import KafkaConsumer

    from fleetpulse.dlq_view import describe_dead_letter

    try:
        client = kafka_properties.kafka_python()
    except KafkaPropertyError as exc:
        raise click.UsageError(str(exc)) from None

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=None if follow else 3000,
        **client,
    )
    try:
        for record in consumer:
            # one bounded, escaped line whatever the record holds (fleetpulse.dlq_view)
            click.echo(describe_dead_letter(record.value, record.partition, record.offset))
    finally:
        consumer.close()
