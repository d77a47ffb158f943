"""``fleetpulse alerts``: run the dispatcher, replay dead letters, manage silences, check a
configuration file, test routes, list firing alerts. Also ``python -m alerting ...``."""

from __future__ import annotations

import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from alerting import AlertingError
from alerting.config import Config, default_config_path, load_config, parse_duration_ms
from udfs.contract import DEFAULT_TOPICS
from udfs.kafka_properties import KafkaProperties, kafka_properties_options
from udfs.printable import printable


def default_state_dir() -> str:
    """``$FLEETPULSE_DATA_DIR/alerting`` (the data directory ``fleetpulse up`` uses, resolved
    the same way), so every command finds the same state from any working directory."""
    from udfs.data_dir import default_data_dir

    return str(default_data_dir() / "alerting")


def _config(path: str | None) -> Config:
    try:
        return load_config(path or default_config_path())
    except AlertingError as exc:
        raise click.ClickException(str(exc)) from None


def _config_text(path: str | None) -> str:
    try:
        return Path(path or default_config_path()).read_text()
    except OSError:
        return ""


def _store(state_dir: str) -> Any:
    from alerting.store import Store

    try:
        return Store(state_dir)
    except AlertingError as exc:
        raise click.ClickException(str(exc)) from None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fmt(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


state_dir_option = click.option(
    "--state-dir",
    default=default_state_dir,
    show_default="$FLEETPULSE_DATA_DIR/alerting",
    help="Durable state: open alerts, retry queue, dead letters, silences.",
)


@click.group(context_settings={"show_default": True})
def alerts() -> None:
    """Alert dispatcher: fleet.alerts to PagerDuty / signed webhooks."""


@alerts.command()
@click.option(
    "--bootstrap", default="127.0.0.1:9092", show_default=True, help="Kafka bootstrap HOST:PORT."
)
@kafka_properties_options
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    show_default="alerting/default_config.yaml",
    help="YAML configuration: receivers, routes, inhibit rules.",
)
@state_dir_option
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus /metrics and /healthz on this port.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics server listens on (0.0.0.0 for a scraper outside "
    "the host or container).",
)
@click.option(
    "--api-port",
    type=int,
    default=None,
    help="Serve an Alertmanager-shaped API v2 (amtool: alerts, silences) on this port.",
)
@click.option(
    "--api-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the API listens on (anyone reaching it can add silences).",
)
@click.option(
    "--group-id",
    default="fleetpulse-alerting",
    show_default=True,
    help="Kafka consumer group id (instances sharing it split the partitions).",
)
@click.option(
    "--instance-id",
    default=None,
    help="Static Kafka group membership id (fast restarts of one instance).",
)
@click.option(
    "--alerts-topic",
    default=DEFAULT_TOPICS.alerts,
    show_default=True,
    help="Kafka topic the alerts are read from.",
)
@click.option(
    "--dlq-topic",
    default=DEFAULT_TOPICS.dlq,
    show_default=True,
    help="Kafka topic unreadable alert records are dead-lettered to.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    help="Python logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
)
def run(
    bootstrap: str,
    config_path: str | None,
    state_dir: str,
    metrics_port: int | None,
    metrics_host: str,
    api_port: int | None,
    api_host: str,
    group_id: str,
    instance_id: str | None,
    alerts_topic: str,
    dlq_topic: str,
    log_level: str,
    kafka_properties: KafkaProperties,
) -> None:
    """Run the dispatcher until SIGTERM/SIGINT."""
    import faulthandler

    from alerting.service import Dispatcher, Settings

    faulthandler.register(signal.SIGUSR1)

    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise click.BadParameter(f"unknown log level {log_level!r}", param_hint="--log-level")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("kafka", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    cfg = _config(config_path)
    settings = Settings(
        bootstrap=bootstrap,
        state_dir=state_dir,
        alerts_topic=alerts_topic,
        dlq_topic=dlq_topic,
        group_id=group_id,
        instance_id=instance_id,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        api_port=api_port,
        api_host=api_host,
        config_text=_config_text(config_path),
        kafka_properties=kafka_properties,
    )
    try:
        dispatcher = Dispatcher(cfg, settings)
    except AlertingError as exc:
        raise click.ClickException(str(exc)) from None

    def stop(signum: int, frame: Any) -> None:
        dispatcher.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        dispatcher.run()
    except AlertingError as exc:
        raise click.ClickException(str(exc)) from None


@alerts.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    show_default="alerting/default_config.yaml",
    help="YAML configuration with the receivers.",
)
@state_dir_option
@click.option("--receiver", default=None, help="Only dead letters of this receiver.")
@click.option("--id", "ids", type=int, multiple=True, help="Only these dead-letter ids.")
@click.option("--list", "list_only", is_flag=True, help="List dead letters, send nothing.")
def replay(
    config_path: str | None,
    state_dir: str,
    receiver: str | None,
    ids: tuple[int, ...],
    list_only: bool,
) -> None:
    """Re-send dead letters (each once) in per-key order; delivered ones are removed.

    A dead letter whose key has a later event (delivered, queued or dead-lettered) is skipped,
    so a trigger is never sent after its resolve; a resolve goes only to a receiver that
    accepted the key's trigger. Skipped ones are listed with the reason and kept."""
    from alerting.service import replay as do_replay

    store = _store(state_dir)
    try:
        if list_only:
            for dl in store.dead_letters(receiver, ids):
                # dedup keys come from fleet.alerts and errors from receivers: escaped
                click.echo(
                    f"{dl.id}\t{printable(dl.receiver)}\t{printable(dl.dedup_key, 300)}\t"
                    f"{printable(dl.event_action)}\t{dl.attempts} attempts\t"
                    f"{_fmt(dl.dead_at_ms)}\t{printable(dl.last_error, 500)}"
                    + (
                        f"\tstale: event {dl.superseded_by} settled after it"
                        if dl.superseded_by
                        else ""
                    )
                )
            return
        cfg = _config(config_path)
        result = do_replay(cfg, store, receiver, list(ids) or None)
    finally:
        store.close()
    click.echo(
        f"replayed {result.delivered} dead letter(s); {len(result.failed)} failed; "
        f"{len(result.skipped)} skipped"
    )
    for dl_id, why in result.skipped:
        click.echo(f"  skipped {dl_id}: {printable(why, 500)}")
    for dl_id, err in result.failed:
        click.echo(f"  {dl_id}: {printable(err, 500)}", err=True)
    if result.failed:
        sys.exit(1)


@alerts.group()
def silence() -> None:
    """Mute alerts matching label matchers for a time window."""


@silence.command("add")
@click.argument("matchers", nargs=-1, required=True)
@state_dir_option
@click.option("--duration", default="1h", show_default=True, help="e.g. 30m, 2h, 1d.")
@click.option("--starts", default=None, help="ISO 8601 start (default: now).")
@click.option("--ends", default=None, help="ISO 8601 end (overrides --duration).")
@click.option("--comment", default="", help="Why.")
@click.option("--created-by", default="", help="Who.")
def silence_add(
    matchers: tuple[str, ...],
    state_dir: str,
    duration: str,
    starts: str | None,
    ends: str | None,
    comment: str,
    created_by: str,
) -> None:
    """Add a silence: MATCHERS like class=truck_offline group=~WEST|SOUTH truck_id!=T1."""
    from alerting.matchers import Matcher

    try:
        parsed = [Matcher.parse(m) for m in matchers]
        start_ms = _parse_time(starts) if starts else _now_ms()
        end_ms = _parse_time(ends) if ends else start_ms + parse_duration_ms(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if end_ms <= start_ms:
        raise click.BadParameter("the silence must end after it starts")
    store = _store(state_dir)
    try:
        sid = store.add_silence(parsed, start_ms, end_ms, comment, created_by, _now_ms())
    finally:
        store.close()
    click.echo(sid)


def _parse_time(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@silence.command("list")
@state_dir_option
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
def silence_list(state_dir: str, show_all: bool) -> None:
    """List silences (active and pending; --all for expired too)."""
    store = _store(state_dir)
    try:
        now = _now_ms()
        for s in store.silences():
            if not show_all and s.ends_ms <= now:
                continue
            status = "active" if s.active(now) else ("expired" if s.ends_ms <= now else "pending")
            click.echo(
                f"{s.id}\t{status}\t{_fmt(s.starts_ms)}..{_fmt(s.ends_ms)}\t"
                f"{printable(' '.join(str(m) for m in s.matchers), 500)}\t"
                f"{printable(s.comment, 500)}"
            )
    finally:
        store.close()


@silence.command("remove")
@click.argument("silence_id")
@state_dir_option
def silence_remove(silence_id: str, state_dir: str) -> None:
    """Remove a silence by id."""
    store = _store(state_dir)
    try:
        if not store.remove_silence(silence_id):
            raise click.ClickException(f"no silence with id {silence_id!r}")
    finally:
        store.close()
    click.echo(f"removed {silence_id}")


@alerts.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False))
def check_config(file: str) -> None:
    """Validate a configuration file; exit 1 with the problems if it is invalid."""
    cfg = _config(file)
    from alerting import routing

    def count(r: routing.Route) -> int:
        return 1 + sum(count(c) for c in r.children)

    click.echo(
        f"{Path(file)}: OK: {len(cfg.receivers)} receiver(s) "
        f"({', '.join(f'{r.name}:{r.type}' for r in cfg.receivers)}), "
        f"{count(routing.build(cfg.route))} route(s), "
        f"{len(cfg.inhibit_rules)} inhibit rule(s)"
    )


@alerts.group()
def routes() -> None:
    """Inspect the routing tree (like amtool config routes)."""


@routes.command("test")
@click.argument("labels", nargs=-1, required=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    show_default="alerting/default_config.yaml",
    help="YAML configuration with the routes.",
)
@click.option(
    "--verify-receivers",
    default=None,
    help="Comma-separated receivers expected; exit 1 if the alert reaches others.",
)
def routes_test(
    labels: tuple[str, ...], config_path: str | None, verify_receivers: str | None
) -> None:
    """Print the receivers an alert with LABELS (label=value ...) reaches, then each route
    it goes through. alertname defaults to class, as on alerts read from Kafka."""
    from alerting import routing

    parsed: dict[str, str] = {}
    for item in labels:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: expected LABEL=VALUE", param_hint="LABELS")
        parsed[name.strip()] = value.strip().strip('"')
    if "class" in parsed:
        parsed.setdefault("alertname", parsed["class"])
    cfg = _config(config_path)
    hits = routing.explain(routing.build(cfg.route), parsed)
    receivers = list(dict.fromkeys(r for r, _ in hits))
    click.echo(",".join(receivers))
    for receiver, path in hits:
        click.echo(f"  {receiver}\t{path}")
    if verify_receivers is not None:
        expected = [r.strip() for r in verify_receivers.split(",") if r.strip()]
        if expected != receivers:
            click.echo(
                f"WARNING: expected receivers {','.join(expected)}, got {','.join(receivers)}",
                err=True,
            )
            sys.exit(1)


@alerts.command()
@click.argument("matchers", nargs=-1)
@state_dir_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    show_default="alerting/default_config.yaml",
    help="YAML configuration (routes and inhibit rules decide receivers and state).",
)
@click.option("--silenced/--no-silenced", default=True, help="Include silenced alerts.")
@click.option("--inhibited/--no-inhibited", default=True, help="Include inhibited alerts.")
def query(
    matchers: tuple[str, ...],
    state_dir: str,
    config_path: str | None,
    silenced: bool,
    inhibited: bool,
) -> None:
    """List firing alerts (like amtool alert query): MATCHERS like class=~"truck_.*"
    severity="critical". Columns: dedup_key, class, severity, state, receivers where open
    (routed receivers in brackets when it is open nowhere), since."""
    from alerting import views
    from alerting.matchers import parse_matchers

    try:
        parsed = [m for text in matchers for m in parse_matchers(text)]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="MATCHERS") from None
    cfg = _config(config_path)
    store = _store(state_dir)
    try:
        shown = views.select(
            views.build(store.firing_alerts(), cfg, store.silences(), _now_ms()),
            parsed,
            silenced=silenced,
            inhibited=inhibited,
        )
    finally:
        store.close()
    for v in shown:
        where = ",".join(v.open_receivers) or f"[{','.join(v.receivers)}]"
        state = v.state + (
            f" (silenced by {','.join(v.silenced_by)})"
            if v.silenced_by
            else " (inhibited)"
            if v.inhibited_by
            else ""
        )
        click.echo(
            f"{printable(v.dedup_key, 300)}\t{printable(v.labels.get('class', ''))}\t"
            f"{printable(v.labels.get('severity', ''))}\t{state}\t{printable(where)}\t"
            f"{_fmt(v.starts_ms)}"
        )


@alerts.command()
@click.option(
    "-n",
    "--lines",
    "count",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="How many of the last deliveries to show.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing deliveries as they arrive.")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: str(_received_path()),
    show_default="$FLEETPULSE_DATA_DIR/receiver/alerts.jsonl",
    help="The local receiver's record (python -m alerting.local_receiver --out).",
)
def tail(count: int, follow: bool, path: Path) -> None:
    """What the local receiver of `fleetpulse up` received: time, action, dedup_key,
    severity, summary and the signature verdict of each delivery, oldest first."""
    from alerting import received

    if not path.exists() and not follow:
        raise click.ClickException(
            f"{path} does not exist: nothing received yet, or no local receiver writes there "
            "(`fleetpulse up` starts one; --file for another)"
        )
    records, end = received.read_last(path, count)
    for rec in records:
        click.echo(received.format_line(rec))
    if follow:
        try:
            for rec in received.follow(path, end):
                click.echo(received.format_line(rec))
        except KeyboardInterrupt:
            pass


def _received_path() -> Path:
    from alerting.received import default_path

    return default_path()
