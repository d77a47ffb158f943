"""The Flink environment a job runs in: its configuration, restore, and ``execute``.

A job sets what it needs to be correct (thread-mode Python, aligned exactly-once checkpoints,
fixed operator ids, its jars) and what its flags say. Submitted with `flink run`, everything
else is the cluster's: its config.yaml, ``-p``, ``-D``, ``-pyexec``. Embedded, an embedded
run's defaults fill in what the flags leave unset. Either way a job checkpoints: every 10 s
when neither a flag nor the cluster sets an interval.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import pyflink
from pyflink.common import Configuration
from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from flink_jobs import JobError
from flink_jobs.runtime.affinity import parse_cpu_list, pin_current_process
from flink_jobs.runtime.checkpoints import (
    initialize_filesystems,
    latest_checkpoint,
    latest_remote_checkpoint,
)
from flink_jobs.runtime.jars import flink_jars, plugins_dir, prometheus_reporter_jar
from flink_jobs.runtime.settings import JobSettings, local_path

log = logging.getLogger("fleetpulse.job")

# Where neither a flag nor the cluster says otherwise: a job needs checkpoints to commit its
# Kafka offsets and to restart without loss.
DEFAULT_CHECKPOINT_INTERVAL_MS = 10_000


def submitted() -> bool:
    """True when `flink run` runs this program: its driver hands PyFlink a gateway to the client
    JVM, whose configuration is the cluster's (config.yaml, -p, -D, -pyexec). Otherwise the job
    runs embedded, on a MiniCluster of its own (``python -m flink_jobs.<job>.job``)."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


def flink_configuration(
    settings: JobSettings, job_name: str, embedded: bool | None = None
) -> Configuration:
    """What the job sets: what it needs to be correct, and what its flags say. Every other
    option is the cluster's when submitted; embedded, the defaults of an embedded run fill in
    what the flags leave unset (this interpreter, parallelism 1, restarts forever, a scratch
    checkpoint directory)."""
    embedded = not submitted() if embedded is None else embedded
    cfg = embedded_base_configuration() if embedded else Configuration()
    cfg.set_string("pipeline.name", job_name)
    # The job's own requirements, whatever the cluster's defaults are:
    cfg.set_string("python.execution-mode", "thread")
    cfg.set_string("pipeline.jars", ";".join(p.resolve().as_uri() for p in flink_jars()))
    cfg.set_string("pipeline.auto-watermark-interval", "200 ms")
    cfg.set_string("table.exec.source.idle-timeout", f"{settings.idle_timeout_ms} ms")
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
    # What the flags say, or an embedded run's defaults:
    if embedded:
        for key in ("python.executable", "python.client.executable"):
            if not cfg.contains_key(key):
                cfg.set_string(key, sys.executable)
    unset = embedded and not cfg.contains_key("parallelism.default")
    parallelism = settings.parallelism or (1 if unset else None)
    if parallelism is not None:
        cfg.set_string("parallelism.default", str(parallelism))
    attempts = settings.restart_attempts
    if attempts is None and embedded and not cfg.contains_key("restart-strategy.type"):
        attempts = -1
    if attempts is not None:
        cfg.set_string("restart-strategy.type", "fixed-delay")
        cfg.set_string(
            "restart-strategy.fixed-delay.attempts", str(attempts if attempts >= 0 else 2**31 - 1)
        )
        cfg.set_string("restart-strategy.fixed-delay.delay", "2 s")
    interval = settings.checkpoint_interval_ms
    if interval is None and embedded and not cfg.contains_key("execution.checkpointing.interval"):
        interval = DEFAULT_CHECKPOINT_INTERVAL_MS
    if interval is not None:
        cfg.set_string("execution.checkpointing.interval", f"{interval} ms")
    storage = settings.checkpoint_uri
    if storage is None and embedded and not cfg.contains_key("execution.checkpointing.dir"):
        # Without a directory Flink keeps checkpoints in the JobManager's memory, capped at
        # 5 MiB: some 10,000 trucks' state would fail every checkpoint. Use a scratch directory.
        scratch = Path(tempfile.gettempdir()) / "fleetpulse-checkpoints" / job_name
        storage = scratch.resolve().as_uri()
    if storage is not None:
        local = local_path(storage)
        if local is not None:
            local.mkdir(parents=True, exist_ok=True)
        cfg.set_string("execution.checkpointing.dir", storage)
    if settings.checkpoint_dir:
        cfg.set_string(
            "execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION"
        )
        cfg.set_string("execution.checkpointing.num-retained", "3")
    restore = resolve_restore(settings)
    if restore is not None:
        log.info("%s restores from %s", job_name, restore)
        cfg.set_string("execution.state-recovery.path", restore)
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


# What an embedded job takes from FLINK_CONF_DIR's config.yaml: filesystems and their
# credentials, state and checkpointing, restarts, parallelism. Not a cluster's process settings
# (slots, ports, reporters, high availability), which would break a MiniCluster of its own.
EMBEDDED_KEYS_FROM_CONF_DIR = (
    "s3.",
    "fs.",
    "gs.",
    "fs.azure.",
    "state.",
    "execution.checkpointing.",
    "restart-strategy.",
    "parallelism.default",
)


def embedded_base_configuration() -> Configuration:
    """What an embedded run starts from: the :data:`EMBEDDED_KEYS_FROM_CONF_DIR` of the
    ``config.yaml`` of ``FLINK_CONF_DIR`` when it is set (filesystem credentials,
    ``s3.endpoint``, checkpointing), else nothing. The job's flags go on top."""
    conf_dir = os.environ.get("FLINK_CONF_DIR")
    if not conf_dir:
        return Configuration()
    from pyflink.java_gateway import get_gateway

    loaded = get_gateway().jvm.org.apache.flink.configuration.GlobalConfiguration
    whole = Configuration(j_configuration=loaded.loadConfiguration(conf_dir))
    base = Configuration()
    for key, value in whole.to_dict().items():
        if key.startswith(EMBEDDED_KEYS_FROM_CONF_DIR):
            base.set_string(key, value)
    return base


def ensure_checkpointing(env: StreamExecutionEnvironment) -> None:
    """Checkpoint every :data:`DEFAULT_CHECKPOINT_INTERVAL_MS` when neither a flag nor the
    cluster set an interval: without checkpoints the job commits no Kafka offsets and restarts
    from its group's start, and the truck function's write-back never runs."""
    if env.get_checkpoint_interval() <= 0:
        log.warning(
            "no checkpoint interval set (--checkpoint-interval-ms or the cluster's "
            "execution.checkpointing.interval): checkpointing every %d ms",
            DEFAULT_CHECKPOINT_INTERVAL_MS,
        )
        env.enable_checkpointing(DEFAULT_CHECKPOINT_INTERVAL_MS)


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


def resolve_restore(settings: JobSettings) -> str | None:
    """The URI of the checkpoint or savepoint to start from (None: a fresh start)."""
    if not settings.restore:
        return None
    if settings.restore == "latest":
        if settings.checkpoint_uri is None:
            # Not the cluster's execution.checkpointing.dir: every job of the cluster writes
            # there, and the newest checkpoint in it may be another job's.
            raise JobError(
                "--restore latest needs --checkpoint-dir, a directory of this job's own (the "
                "cluster's execution.checkpointing.dir holds every job's checkpoints, and the "
                "newest there may be another job's); or pass --restore PATH"
            )
        if settings.checkpoint_path is not None:
            found = latest_checkpoint(settings.checkpoint_path)
            return found.resolve().as_uri() if found is not None else None
        return latest_remote_checkpoint(settings.checkpoint_uri)  # None: first start
    path = local_path(settings.restore)
    if path is None:
        return settings.restore
    if not path.exists():
        raise JobError(f"--restore {path}: no such checkpoint")
    return path.resolve().as_uri()


def export_python_path() -> None:
    """Make this interpreter's packages importable by the embedded (thread-mode) Python.

    pemja embeds libpython in the JVM; that interpreter does not read a virtualenv's
    ``pyvenv.cfg``, so without this it finds neither pemja nor fleetpulse's packages.
    """
    import site

    paths = [*site.getsitepackages(), str(Path(__file__).resolve().parents[2])]
    current = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([current] if current else [])])


def use_filesystem_plugins() -> None:
    """Point ``FLINK_PLUGINS_DIR`` at the set-up's plugins (the S3 filesystem), before the first
    gateway call: an embedded MiniCluster and the client load filesystem plugins from there, as
    a cluster's processes do from theirs. PyFlink sets the variable to the wheel's own
    ``plugins/`` (metric reporters only) when it is first imported; a directory the user chose
    is left alone."""
    plugins = plugins_dir()
    if plugins is None:
        return
    # PyFlink resolves FLINK_HOME (and, when it was unset, resets FLINK_PLUGINS_DIR) when it
    # launches its gateway: have it do so now, before the override, not after.
    from pyflink.find_flink_home import _find_flink_home

    _find_flink_home()
    current = os.environ.get("FLINK_PLUGINS_DIR")
    wheel_default = Path(pyflink.__file__).resolve().parent / "plugins"
    if current is None or Path(current).resolve() == wheel_default:
        os.environ["FLINK_PLUGINS_DIR"] = str(plugins)


def create_environment(
    settings: JobSettings, job_name: str
) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    export_python_path()
    use_filesystem_plugins()
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
    cfg = flink_configuration(settings, job_name)
    if not submitted():
        # A MiniCluster does not load filesystem plugins itself (a cluster's processes do at
        # start): without this, s3:// checkpoints work only after --restore latest listed them.
        from pyflink.java_gateway import get_gateway

        initialize_filesystems(get_gateway().jvm, cfg._j_configuration)
    env = StreamExecutionEnvironment.get_execution_environment(cfg)
    ensure_checkpointing(env)
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    env.set_buffer_timeout(settings.buffer_timeout_ms)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("pipeline.name", job_name)
    return env, t_env
