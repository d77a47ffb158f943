"""``fleetpulse simulate`` and ``fleetpulse replay``: wiring of the pure generator to Kafka or
JSONL files, the event clock and the progress line."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from simulator import SimulatorError
from simulator.config import Faults, SimConfig, Trouble
from simulator.fleet import FleetSimulator, Record
from simulator.pacing import EventClock, paced
from simulator.sinks import JsonlSink, KafkaSink, Progress, Sink, read_jsonl
from udfs.contract import DEFAULT_TOPICS, TopicNames
from udfs.kafka_properties import KafkaProperties, kafka_properties_options

HOUR_MS = 3_600_000
# --help shows every option's default, also under `python -m simulator`
CONTEXT_SETTINGS = {"show_default": True}


def _send_all(records: Iterable[Record], sink: Sink, progress: Progress) -> None:
    try:
        for rec in records:
            sink.send(rec)
            progress.add(rec)
    except KeyboardInterrupt:
        click.echo("\ninterrupted; flushing what was sent", err=True)
    finally:
        sink.close()
        progress.done()


def _topics(gps_topic: str, scans_topic: str) -> TopicNames:
    return TopicNames(gps=gps_topic, scans=scans_topic)


F = TypeVar("F", bound=Callable[..., Any])


def kafka_target(command: F) -> F:
    """The Kafka broker and topics a command sends to (simulate and replay share them), and
    the client properties (``kafka_properties``)."""
    command = kafka_properties_options(command)
    for option in reversed(
        [
            click.option(
                "--bootstrap",
                default="127.0.0.1:9092",
                show_default=True,
                help="Kafka bootstrap HOST:PORT",
            ),
            click.option(
                "--gps-topic",
                default=DEFAULT_TOPICS.gps,
                show_default=True,
                help="Kafka topic of the pings",
            ),
            click.option(
                "--scans-topic",
                default=DEFAULT_TOPICS.scans,
                show_default=True,
                help="Kafka topic of the shipment scans",
            ),
        ]
    ):
        command = option(command)
    return command


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--trucks", default=200, show_default=True, help="fleet size")
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    help="cap on records sent per wall second (0: no cap; event time slows to fit)",
)
@click.option(
    "--speedup",
    default=60.0,
    show_default=True,
    help="simulated seconds per wall second while catching up to the wall clock",
)
@click.option(
    "--seed",
    default=1,
    show_default=True,
    help="random seed: the same seed and options generate the same records",
)
@click.option(
    "--hours", "hours", default=48.0, show_default=True, help="simulated hours to generate"
)
@click.option(
    "--backfill-hours",
    default=None,
    type=float,
    help="start this many simulated hours before now (default: --hours plus the late "
    "delay, so the run ends before now); event time never passes the wall "
    "clock: once caught up it runs in real time",
)
@click.option(
    "--start-ms",
    default=None,
    type=int,
    help="fixed start of event time (epoch ms) for reproducible files",
)
@click.option("--ping-interval", default=30.0, show_default=True, help="seconds between pings")
@click.option("--max-speed", default=110.0, show_default=True, help="km/h")
@click.option(
    "--trouble",
    default=1.0,
    show_default=True,
    help="multiplier on every trouble share (late, stuck, failed, lost, silent, "
    "breakdown); 0 disables all but the guaranteed first-trip cases",
)
@click.option("--no-guaranteed", is_flag=True, help="no forced trouble on trucks 0-5")
@click.option(
    "--faults/--no-faults",
    default=True,
    show_default=True,
    help="inject transport and device faults (the shares below); --no-faults: a clean stream",
)
@click.option("--out-of-order", default=0.02, show_default=True, help="share reordered")
@click.option(
    "--out-of-order-max-s",
    default=8.0,
    show_default=True,
    help="longest delay of a reordered record, in seconds",
)
@click.option("--late", default=0.001, show_default=True, help="share of pings sent late")
@click.option(
    "--late-max-s",
    default=300.0,
    show_default=True,
    help="longest delay of a late ping, in seconds (the shortest is 30)",
)
@click.option("--duplicates", default=0.01, show_default=True, help="share duplicated")
@click.option("--malformed", default=0.002, show_default=True, help="share of extra bad records")
@click.option("--skew", default=0.05, show_default=True, help="share of trucks with clock skew")
@click.option(
    "--skew-max-s",
    default=4.0,
    show_default=True,
    help="largest clock offset of a skewed truck, in seconds (either way)",
)
@kafka_target
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    default=None,
    help="write JSONL here instead of sending to Kafka (no pacing)",
)
@click.option(
    "--truth",
    "truth_path",
    type=click.Path(path_type=Path),
    default=None,
    help="write the ground truth JSON here when the run ends",
)
@click.option("--fast", is_flag=True, help="send to Kafka as fast as possible (no pacing)")
@click.option(
    "--progress/--no-progress",
    default=None,
    show_default="when stderr is a terminal",
    help="show a self-updating progress line on stderr",
)
def simulate(
    trucks: int,
    rate: float,
    speedup: float,
    seed: int,
    hours: float,
    backfill_hours: float | None,
    start_ms: int | None,
    ping_interval: float,
    max_speed: float,
    trouble: float,
    no_guaranteed: bool,
    faults: bool,
    out_of_order: float,
    out_of_order_max_s: float,
    late: float,
    late_max_s: float,
    duplicates: float,
    malformed: float,
    skew: float,
    skew_max_s: float,
    bootstrap: str,
    gps_topic: str,
    scans_topic: str,
    out_path: Path | None,
    truth_path: Path | None,
    fast: bool,
    progress: bool | None,
    kafka_properties: KafkaProperties,
) -> None:
    """Simulate a truck fleet and its shipments into fleet.gps / fleet.scans (or a file)."""
    try:
        if start_ms is None:
            # default: the whole run, late records included, lies in the past
            back = hours + (late_max_s + 60) / 3600 if backfill_hours is None else backfill_hours
            start_ms = int(time.time() * 1000) - int(back * HOUR_MS)
        t = Trouble()
        tr = replace(
            t,
            guaranteed=not no_guaranteed,
            **{
                k: min(1.0, getattr(t, k) * trouble)
                for k in (
                    "silent_share",
                    "breakdown_share",
                    "late_share",
                    "stuck_share",
                    "failed_share",
                    "lost_share",
                )
            },
        )
        fl = (
            Faults(
                out_of_order,
                out_of_order_max_s,
                late,
                30.0,
                late_max_s,
                duplicates,
                malformed,
                skew,
                skew_max_s,
            )
            if faults
            else Faults.none()
        )
        cfg = SimConfig(
            trucks=trucks,
            seed=seed,
            start_ms=start_ms,
            ping_interval_s=ping_interval,
            max_speed_kph=max_speed,
            min_cruise_kph=min(80.0, max_speed),
            trouble=tr,
            faults=fl,
        )
        sim = FleetSimulator(cfg)
        records: Iterator[Record] = sim.run(hours * 3600)
        sink: Sink
        if out_path is not None:
            sink = JsonlSink(out_path)
        else:
            sink = KafkaSink(
                bootstrap,
                _topics(gps_topic, scans_topic),
                compression="lz4",
                properties=kafka_properties,
            )
            if not fast:
                clock = EventClock(start_ms, speedup)
                records = paced(records, lambda r: r.emit_ms, clock, rate, on_wait=sink.flush)
        _send_all(records, sink, Progress(enabled=progress))
        if truth_path is not None:
            truth_path.write_bytes(sim.truth.to_json())
            n = len(sim.truth.required())
            click.echo(
                f"ground truth: {n} required alerts, {len(sim.truth.malformed)} "
                f"malformed records -> {truth_path}",
                err=True,
            )
    except SimulatorError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@kafka_target
@click.option(
    "--scale",
    default=1.0,
    show_default=True,
    help="pace: 1 = the original pace, 10 = ten times faster",
)
@click.option("--fast", is_flag=True, help="as fast as possible")
@click.option(
    "--progress/--no-progress",
    default=None,
    show_default="when stderr is a terminal",
    help="show a self-updating progress line on stderr",
)
def replay(
    file: Path,
    bootstrap: str,
    scale: float,
    fast: bool,
    gps_topic: str,
    scans_topic: str,
    progress: bool | None,
    kafka_properties: KafkaProperties,
) -> None:
    """Send a JSONL file written by `simulate --out` to Kafka, paced like the original."""
    try:
        records: Iterator[Record] = read_jsonl(file)
        sink = KafkaSink(
            bootstrap,
            _topics(gps_topic, scans_topic),
            compression="lz4",
            properties=kafka_properties,
        )
        if not fast:
            records = replay_paced(records, scale, on_wait=sink.flush)
        _send_all(records, sink, Progress(enabled=progress))
    except SimulatorError as exc:
        raise click.ClickException(str(exc)) from exc


def replay_paced(
    records: Iterator[Record],
    scale: float,
    on_wait: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> Iterator[Record]:
    """Keep the gaps between emission times, divided by ``scale``."""
    if scale <= 0:
        raise SimulatorError("--scale must be positive")
    t0: float | None = None
    first = 0
    for rec in records:
        if t0 is None:
            t0, first = monotonic(), rec.emit_ms
        due = t0 + (rec.emit_ms - first) / 1000 / scale
        wait = due - monotonic()
        if wait > 0.002:
            if on_wait is not None:
                on_wait()
            sleep(wait)
        yield rec


@click.group(context_settings=CONTEXT_SETTINGS)
def group() -> None:
    """fleetpulse simulator."""


group.add_command(simulate)
group.add_command(replay)
