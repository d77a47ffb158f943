"""The Flink environment a job runs in: its configuration, restore, and ``execute``.

Everything a job sets here comes from its settings; the rest is Flink's own defaults or the
cluster's configuration.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from pyflink.common import Configuration
from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from flink_jobs import JobError
from flink_jobs.runtime.affinity import parse_cpu_list, pin_current_process
from flink_jobs.runtime.jars import flink_jars, prometheus_reporter_jar
from flink_jobs.runtime.settings import JobSettings


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The most recently completed retained checkpoint (``<job>/chk-N`` with a ``_metadata``).

    Each run of a job writes under its own job id, so the newest ``_metadata`` by time is the
    latest state, whichever run wrote it.
    """
    metas = list(checkpoint_dir.glob("*/chk-*/_metadata"))
    if not metas:
        return None
    return max(metas, key=lambda p: p.stat().st_mtime_ns).parent


def flink_configuration(settings: JobSettings, job_name: str) -> Configuration:
    cfg = Configuration()
    cfg.set_string("pipeline.name", job_name)
    cfg.set_string("python.execution-mode", "thread")
    cfg.set_string("python.executable", sys.executable)
    cfg.set_string("python.client.executable", sys.executable)
    cfg.set_string("pipeline.jars", ";".join(p.resolve().as_uri() for p in flink_jars()))
    cfg.set_string("parallelism.default", str(settings.parallelism))
    cfg.set_string("pipeline.auto-watermark-interval", "200 ms")
    cfg.set_string("table.exec.source.idle-timeout", f"{settings.idle_timeout_ms} ms")
    cfg.set_string("restart-strategy.type", "fixed-delay")
    attempts = settings.restart_attempts if settings.restart_attempts >= 0 else 2147483647
    cfg.set_string("restart-strategy.fixed-delay.attempts", str(attempts))
    cfg.set_string("restart-strategy.fixed-delay.delay", "2 s")
    cfg.set_string("execution.checkpointing.interval", f"{settings.checkpoint_interval_ms} ms")
    cfg.set_string("execution.checkpointing.mode", "EXACTLY_ONCE")
    # Aligned barriers: the bundled truck function writes its state back at a marker just
    # ahead of each input's barrier, so no record may overtake one
    # (flink_jobs.tracking.shard_state).
    cfg.set_string("execution.checkpointing.unaligned.enabled", "false")
    # Operator ids that a new version of the job keeps, so that it restores the state of a
    # checkpoint or savepoint of the one before: the DataStream operators carry uids of
    # their own (.uid), and the planner gives the SQL ones (the Kafka sources with their
    # offsets, MATCH_RECOGNIZE, the sinks) "<node id>_<kind>" instead of a hash of the graph.
    cfg.set_string("table.exec.uid.generation", "ALWAYS")
    if settings.checkpoint_path is None:
        # Without a directory Flink keeps checkpoints in the JobManager's memory, capped at
        # 5 MiB: some 10,000 trucks' state would fail every checkpoint. Use a scratch directory.
        scratch = Path(tempfile.gettempdir()) / "fleetpulse-checkpoints" / job_name
        scratch.mkdir(parents=True, exist_ok=True)
        cfg.set_string("execution.checkpointing.dir", scratch.resolve().as_uri())
    else:
        settings.checkpoint_path.mkdir(parents=True, exist_ok=True)
        cfg.set_string("execution.checkpointing.dir", settings.checkpoint_path.resolve().as_uri())
        cfg.set_string(
            "execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION"
        )
        cfg.set_string("execution.checkpointing.num-retained", "3")
    restore = resolve_restore(settings)
    if restore is not None:
        cfg.set_string("execution.state-recovery.path", restore.resolve().as_uri())
        if settings.allow_non_restored_state:
            cfg.set_string("execution.state-recovery.ignore-unclaimed-state", "true")
    if settings.rest_port:
        cfg.set_string("rest.port", str(settings.rest_port))
        cfg.set_string("rest.address", "127.0.0.1")
        cfg.set_string("rest.bind-address", "127.0.0.1")
    if settings.metrics_port:
        cfg.set_string(
            "metrics.reporter.prom.factory.class",
            "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        )
        cfg.set_string("metrics.reporter.prom.port", str(settings.metrics_port))
    return cfg


# Flink's words when a checkpoint holds state of an operator the program no longer has.
RESTORE_MISMATCH = "Cannot map checkpoint/savepoint state"


def execute(env: StreamExecutionEnvironment, job_name: str, settings: JobSettings) -> None:
    """``env.execute``, with the one restore failure an operator must act on said plainly.

    The jobs' stateful operators carry fixed ids (``.uid`` and ``table.exec.uid.generation``),
    but a checkpoint of a version from before them, or one with an operator since removed,
    cannot be restored, and Flink refuses to start rather than drop state.
    """
    try:
        env.execute(job_name)
    except Exception as exc:
        if RESTORE_MISMATCH not in str(exc):
            raise
        remedy = (
            f"move {settings.checkpoint_dir} aside"
            if settings.restore == "latest"
            else "start without --restore"
        )
        raise JobError(
            f"--restore {settings.restore}: checkpoint {resolve_restore(settings)} was written "
            f"by a version of {job_name} with other operators and cannot be restored into "
            "this one. To drop the state of the operators this version no longer has, add "
            f"--allow-non-restored-state. To start without it, {remedy}: the job then reads "
            "from its consumer group's committed Kafka offsets with empty state, which new "
            "records rebuild "
            "(incidents open in the old state are not resolved)."
        ) from None


def resolve_restore(settings: JobSettings) -> Path | None:
    if not settings.restore:
        return None
    if settings.restore == "latest":
        if settings.checkpoint_path is None:
            raise JobError("--restore latest needs --checkpoint-dir")
        return latest_checkpoint(settings.checkpoint_path)  # None: first start, nothing to restore
    path = Path(settings.restore)
    if not path.exists():
        raise JobError(f"--restore {path}: no such checkpoint")
    return path


def export_python_path() -> None:
    """Make this interpreter's packages importable by the embedded (thread-mode) Python.

    pemja embeds libpython in the JVM; that interpreter does not read a virtualenv's
    ``pyvenv.cfg``, so without this it finds neither pemja nor fleetpulse's packages.
    """
    import site

    paths = [*site.getsitepackages(), str(Path(__file__).resolve().parents[2])]
    current = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([current] if current else [])])


def create_environment(
    settings: JobSettings, job_name: str
) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    export_python_path()
    cpus = parse_cpu_list(settings.cpus)
    if cpus:
        # Before the first gateway call: the MiniCluster JVM inherits this process's affinity.
        pin_current_process(cpus)
    if settings.metrics_port:
        # The embedded MiniCluster loads metric reporters from its own classpath at start-up;
        # the PyFlink launcher appends HADOOP_CLASSPATH to it.
        jar = prometheus_reporter_jar()
        if jar is not None:
            extra = os.environ.get("HADOOP_CLASSPATH", "")
            os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(p for p in (extra, str(jar)) if p)
    env = StreamExecutionEnvironment.get_execution_environment(
        flink_configuration(settings, job_name)
    )
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    env.set_buffer_timeout(settings.buffer_timeout_ms)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("pipeline.name", job_name)
    return env, t_env
