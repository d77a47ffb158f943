"""`fleetpulse backfill`: rerun a job over a range of history into staging, and verify."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import orjson

from fleetpulse.backfill import BackfillError
from fleetpulse.backfill.ranges import Partition
from udfs.contract import TopicNames
from udfs.kafka_properties import KafkaProperties, kafka_properties_options

SECTION_NAMES = ("regions", "delays", "positions", "alerts")


@click.command(
    context_settings={"show_default": True},
    epilog="Flags after `--` go to the job unchanged (its own settings, say a fixed threshold): "
    "fleetpulse backfill --job delay --from ... --to ... -- --stuck-after-s 7200",
)
@click.option(
    "--job",
    type=click.Choice(["tracking", "delay"]),
    required=True,
    help="The job to rerun, with the code installed here.",
)
@click.option(
    "--from",
    "from_",
    required=True,
    help="Start of the range: epoch ms or ISO 8601 (UTC if no zone). Records are chosen by "
    "their Kafka timestamps (offsetsForTimes).",
)
@click.option("--to", "to", required=True, help="End of the range (excluded), as --from.")
@click.option(
    "--bootstrap",
    default="127.0.0.1:9092",
    envvar="FLEETPULSE_BOOTSTRAP",
    show_envvar=True,
    help="Kafka bootstrap HOST:PORT.",
)
@kafka_properties_options
@click.option(
    "--redis-url",
    default="redis://127.0.0.1:6379/0",
    envvar="FLEETPULSE_REDIS_URL",
    show_envvar=True,
    help="The live Redis (its database is live; staging is another database of it).",
)
@click.option(
    "--staging-db",
    type=int,
    default=None,
    show_default="the live database + 1",
    help="Redis database the backfill writes; emptied before it starts.",
)
@click.option("--gps-topic", default=TopicNames.gps, help="The GPS pings topic (input).")
@click.option("--scans-topic", default=TopicNames.scans, help="The scans topic (input).")
@click.option("--alerts-topic", default=TopicNames.alerts, help="The live alerts topic.")
@click.option(
    "--geofence-topic",
    default=TopicNames.geofence_events,
    help="The live geofence topic (the backfill writes its staging twin).",
)
@click.option(
    "--dlq-topic",
    default=TopicNames.dlq,
    help="The live dead-letter topic (the backfill writes its staging twin).",
)
@click.option(
    "--staging-suffix",
    default=".staging",
    help="Appended to the output topics' names (alerts, geofence events, dead letters) for the "
    "backfill's own, created if missing: its alerts never reach the dispatcher.",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("backfill.log"),
    help="The job's output.",
)
@click.option(
    "--run/--skip-run",
    default=True,
    help="--skip-run: verify the staging database a previous backfill left.",
)
@click.option("--verify", is_flag=True, help="Compare staging with live after the run.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("backfill-report.json"),
    help="Where --verify writes its JSON report.",
)
@click.option("--sample", default=200, help="Trucks whose positions --verify compares.")
@click.option(
    "--max-differences",
    multiple=True,
    metavar="SECTION=N",
    help="Differences allowed in a section (regions, delays, positions, alerts) before "
    "--verify fails; repeatable; 0 each by default.",
)
@click.option("--region-tolerance", default=1e-6, help="Absolute gap of a region field.")
@click.option("--delay-score-tolerance", default=0.0, help="Gap of a `delays` score.")
@click.option("--position-tolerance-m", default=1.0, help="Distance of a truck's positions.")
@click.option(
    "--alert-tolerance", default=0.0, help="Gap of an alert class's count, as a fraction of live's."
)
@click.argument("job_flags", nargs=-1, type=click.UNPROCESSED)
def backfill(
    job: str,
    from_: str,
    to: str,
    bootstrap: str,
    kafka_properties: KafkaProperties,
    redis_url: str,
    staging_db: int | None,
    gps_topic: str,
    scans_topic: str,
    alerts_topic: str,
    geofence_topic: str,
    dlq_topic: str,
    staging_suffix: str,
    log_path: Path,
    run: bool,
    verify: bool,
    report: Path,
    sample: int,
    max_differences: tuple[str, ...],
    region_tolerance: float,
    delay_score_tolerance: float,
    position_tolerance_m: float,
    alert_tolerance: float,
    job_flags: tuple[str, ...],
) -> None:
    """Run a job's current code over the Kafka records of a time range into a staging Redis
    database and staging topics, the live jobs untouched; --verify compares staging with
    live and exits 1 on a breach (docs/backfill.md)."""
    from fleetpulse.backfill.compare import Thresholds
    from fleetpulse.backfill.ranges import check_range, parse_time, with_db
    from fleetpulse.backfill.ranges import staging_db as pick_db

    try:
        start_ms, stop_ms = parse_time(from_), parse_time(to)
        check_range(start_ms, stop_ms)
        db = pick_db(redis_url, staging_db)
        thresholds = Thresholds(
            max_differences=parse_allowed(max_differences),
            region_tolerance=region_tolerance,
            delay_score_tolerance=delay_score_tolerance,
            position_tolerance_m=position_tolerance_m,
            alert_tolerance=alert_tolerance,
        )
        live = TopicNames(gps_topic, scans_topic, alerts_topic, geofence_topic, dlq_topic)
        staged_from = None  # where this run's staging alerts begin (None: from --from)
        if run:
            staged_from = run_backfill(
                job, start_ms, stop_ms, bootstrap, kafka_properties, redis_url, db, live,
                staging_suffix, log_path, job_flags,
            )  # fmt: skip
        if verify:
            from fleetpulse.backfill.verify import verify_staging

            outcome = verify_staging(
                job, start_ms, stop_ms, bootstrap, kafka_properties, redis_url,
                with_db(redis_url, db), live, staging_suffix, sample, thresholds, staged_from,
            )  # fmt: skip
            report.write_bytes(orjson.dumps(outcome.to_json(), option=orjson.OPT_INDENT_2))
            click.echo(outcome.summary())
            click.echo(f"report: {report}")
            if not outcome.ok:
                click.echo(f"verify: BREACH in {', '.join(outcome.breaches)}", err=True)
                sys.exit(1)
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from None


def parse_allowed(pairs: tuple[str, ...]) -> dict[str, int]:
    allowed = dict.fromkeys(SECTION_NAMES, 0)
    for pair in pairs:
        name, _, count = pair.partition("=")
        if name not in allowed or not count.isdigit():
            raise BackfillError(
                f"--max-differences {pair!r}: expected SECTION=N, SECTION one of "
                f"{', '.join(SECTION_NAMES)}"
            )
        allowed[name] = int(count)
    return allowed


def run_backfill(
    job: str,
    start_ms: int,
    stop_ms: int,
    bootstrap: str,
    props: KafkaProperties,
    redis_url: str,
    db: int,
    live: TopicNames,
    suffix: str,
    log_path: Path,
    job_flags: tuple[str, ...],
) -> dict[Partition, int]:
    """Empty staging, make the staging topics, run the job with a progress bar. Returns the
    staging alerts topic's end offsets before the run (where this run's alerts begin)."""
    from fleetpulse.backfill import io
    from fleetpulse.backfill.ranges import describe_rate, with_db
    from fleetpulse.backfill.run import BackfillPlan, pass_through, run_job, staging_topics
    from fleetpulse.services.kafka import create_topics
    from udfs.contract import contract_topics

    staging = staging_topics(live, suffix)
    plan = BackfillPlan(
        job=job,
        start_ms=start_ms,
        stop_ms=stop_ms,
        bootstrap=bootstrap,
        staging_redis_url=with_db(redis_url, db),
        live=live,
        staging=staging,
        group_id=f"fleetpulse-backfill-{job}-{int(time.time() * 1000)}",
        extra=pass_through(job_flags),
    )
    span = io.offset_range(bootstrap, props, plan.input_topics(), start_ms, stop_ms)
    outputs = {staging.alerts, staging.geofence_events, staging.dlq}
    create_topics(bootstrap, [t for t in contract_topics(staging) if t.name in outputs], props)
    staged_from = io.end_offsets(bootstrap, props, staging.alerts)
    client = io.connect(plan.staging_redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    click.echo(
        f"backfill: {job} job over {span.total:,} records into Redis db {db} and {staging.alerts}",
        err=True,
    )
    with click.progressbar(
        length=max(1, span.total), label="backfill", show_eta=False, file=sys.stderr
    ) as bar:
        shown = [0]
        line = ["starting"]

        def progress(done: int, elapsed_s: float) -> None:
            line[0] = describe_rate(done, elapsed_s, span.total)
            bar.update(max(0, done - shown[0]))
            shown[0] = max(shown[0], done)

        bar.item_show_func = lambda _item: line[0]
        elapsed = run_job(
            plan,
            props,
            log_path,
            span,
            progress,
            lambda: io.committed(bootstrap, props, plan.group_id),
        )
    rate = span.total / elapsed if elapsed > 0 else 0.0
    click.echo(
        f"backfill: {span.total:,} records in {elapsed:.1f} s ({rate:,.0f} rec/s, including the "
        "job's start)",
        err=True,
    )
    io.forget_group(bootstrap, props, plan.group_id)
    return staged_from
