"""`fleetpulse cluster start|stop|status`: a local Flink session cluster from the wheel.

The embedded MiniCluster that `fleetpulse up` uses by default runs every Python operator in
one interpreter, so its Python work is serialised by one interpreter lock. A session cluster
with several TaskManager processes gives each its own interpreter; the benchmark measured the
tracking job at 2.65x the embedded rate with two TaskManagers on two cores. Start one here,
then `fleetpulse up --flink-url <printed URL> --parallelism 2`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fleetpulse import PlatformError
from fleetpulse.commands import CONTEXT_SETTINGS, data_dir_option
from fleetpulse.services.flink_cluster import StandaloneCluster


def _cluster(
    data_dir: Path,
    taskmanagers: int = 1,
    slots: int = 2,
    rest_port: int = 8091,
    rpc_port: int = 6133,
    pin: bool = False,
) -> StandaloneCluster:
    return StandaloneCluster(
        data_dir / "flink-cluster",
        rest_port=rest_port,
        rpc_port=rpc_port,
        taskmanagers=taskmanagers,
        slots_per_taskmanager=slots,
        pin_taskmanagers=pin,
    )


@click.group(context_settings=CONTEXT_SETTINGS)
def cluster() -> None:
    """A local Flink session cluster (one interpreter per TaskManager) for `up --flink-url`."""


@cluster.command()
@data_dir_option
@click.option(
    "--taskmanagers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 16),
    help="TaskManager processes (each runs its own Python interpreter).",
)
@click.option(
    "--slots",
    default=2,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Task slots per TaskManager (both jobs need slots).",
)
@click.option(
    "--rest-port",
    default=8091,
    envvar="FLEETPULSE_CLUSTER_REST_PORT",
    show_envvar=True,
    show_default=True,
    help="TCP port of the JobManager's REST API / web UI (what `up --flink-url` is given).",
)
@click.option(
    "--rpc-port",
    default=6133,
    envvar="FLEETPULSE_CLUSTER_RPC_PORT",
    show_envvar=True,
    show_default=True,
    help="TCP port of the JobManager's RPC endpoint (TaskManagers register there).",
)
@click.option(
    "--pin-taskmanagers/--no-pin-taskmanagers",
    default=False,
    show_default=True,
    envvar="FLEETPULSE_CLUSTER_PIN_TASKMANAGERS",
    show_envvar=True,
    help="Run each TaskManager on a CPU of its own (round robin over the usable "
    "CPUs): its Python operators share one interpreter lock, and handing it "
    "over between cores is costly (1.17-1.33x the tracking job's rate with two "
    "TaskManagers on two cores, docs/tracking.md).",
)
def start(
    data_dir: Path,
    taskmanagers: int,
    slots: int,
    rest_port: int,
    rpc_port: int,
    pin_taskmanagers: bool,
) -> None:
    """Start the cluster in the background; prints the URL for `up --flink-url`."""
    from fleetpulse.services.process import pid_alive
    from fleetpulse.waiting import check_port_free

    c = _cluster(data_dir, taskmanagers, slots, rest_port, rpc_port, pin_taskmanagers)
    alive = sorted(pid for pid in c.pids().values() if pid_alive(pid))
    if alive:
        raise click.ClickException(
            f"a Flink cluster from {data_dir} is already running "
            f"(pids {alive}); `fleetpulse cluster stop` first"
        )
    try:
        check_port_free(rest_port, "the Flink REST API")
        check_port_free(rpc_port, "the Flink JobManager RPC")
    except PlatformError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        c.start()
    except PlatformError as exc:
        c.stop()
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Flink session cluster with {taskmanagers} TaskManagers x {slots} slots at "
        f"{c.rest_url} (logs in {c.work_dir / 'log'})"
    )
    click.echo(f"  fleetpulse up --flink-url {c.rest_url} --parallelism {taskmanagers}")


@cluster.command()
@data_dir_option
def stop(data_dir: Path) -> None:
    """Stop every process of the cluster started from this data directory."""
    _cluster(data_dir).stop()
    click.echo("Flink session cluster stopped")


@cluster.command()
@data_dir_option
@click.option(
    "--rest-port",
    default=8091,
    envvar="FLEETPULSE_CLUSTER_REST_PORT",
    show_envvar=True,
    show_default=True,
    help="TCP port of the cluster's REST API.",
)
def status(data_dir: Path, rest_port: int) -> None:
    """TaskManagers, free slots and running jobs; exit 1 when the cluster does not answer."""
    from fleetpulse.services.flink import rest_get

    c = _cluster(data_dir, rest_port=rest_port)
    try:
        overview = rest_get(c.rest_url, "/overview")
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        click.echo(f"no Flink cluster at {c.rest_url}: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"{c.rest_url}: {overview.get('taskmanagers')} TaskManagers, "
        f"{overview.get('slots-available')}/{overview.get('slots-total')} slots free, "
        f"{overview.get('jobs-running')} jobs running"
    )
