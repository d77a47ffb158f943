"""Plumbing shared by the jobs: the Flink environment, Kafka sources and sinks, restore.

Sources use Flink's Kafka connector through a Table API table with the ``raw`` format: every
record arrives as its original bytes with its partition and offset (so any bytes at all can be
dead-lettered with their origin, and nothing can fail the source), and the event-time watermark
is computed in the JVM from the record's ``ts`` per Kafka partition, with idleness. The table is
then turned into a DataStream for the Python operators.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyflink.common import Configuration, Row, Types
from pyflink.datastream import DataStream, RuntimeExecutionMode, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment

from fleetpulse.affinity import parse_cpu_list, pin_current_process
from fleetpulse.paths import flink_jars, prometheus_reporter_jar
from flink_jobs import JobError
from flink_jobs.settings import JobSettings
from udfs.models import DEAD_LETTER_PRODUCER_MAX_BYTES, DeadLetter, Reason, Rejection

T = TypeVar("T")

NO_WATERMARK = -(2**63) + 1  # below this, Flink has not emitted a watermark yet (both jobs)

# Rows entering the Python operators: original bytes, where they came from, and their Kafka key
# (kept for the dead letter; None when the record has none).
RAW_RECORD = Types.ROW_NAMED(["value", "partition", "offset", "record_key"],
                             [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.INT(), Types.LONG(),
                              Types.PRIMITIVE_ARRAY(Types.BYTE())])
# Rows leaving for a Kafka topic: record key and value, both text.
KEYED_TEXT = Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.STRING()])


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
    # ahead of each input's barrier, so no record may overtake one (flink_jobs.shard_state).
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
        cfg.set_string("execution.checkpointing.externalized-checkpoint-retention",
                       "RETAIN_ON_CANCELLATION")
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
        cfg.set_string("metrics.reporter.prom.factory.class",
                       "org.apache.flink.metrics.prometheus.PrometheusReporterFactory")
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
        remedy = (f"move {settings.checkpoint_dir} aside" if settings.restore == "latest"
                  else "start without --restore")
        raise JobError(
            f"--restore {settings.restore}: checkpoint {resolve_restore(settings)} was written "
            f"by a version of {job_name} with other operators and cannot be restored into "
            "this one. To drop the state of the operators this version no longer has, add "
            f"--allow-non-restored-state. To start without it, {remedy}: the job then reads "
            "from its consumer group's committed Kafka offsets with empty state, which new "
            "records rebuild "
            "(incidents open in the old state are not resolved).") from None


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

    paths = [*site.getsitepackages(), str(Path(__file__).resolve().parent.parent)]
    current = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([current] if current else [])])


def create_environment(settings: JobSettings, job_name: str
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
        flink_configuration(settings, job_name))
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    env.set_buffer_timeout(settings.buffer_timeout_ms)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("pipeline.name", job_name)
    return env, t_env


def kafka_raw_source(t_env: StreamTableEnvironment, settings: JobSettings, topic: str,
                     table: str) -> DataStream:
    """Records of ``topic`` as RAW_RECORD rows, event-time stamped from their ``ts`` field
    (the table of :func:`kafka_raw_table`, read once)."""
    kafka_raw_table(t_env, settings, topic, table)
    tbl = t_env.sql_query(f"SELECT `value`, `partition`, `offset`, `record_key` FROM {table}")
    return t_env.to_data_stream(tbl)


def kafka_raw_table(t_env: StreamTableEnvironment, settings: JobSettings, topic: str,
                    table: str, watermark_per_record: bool = False) -> None:
    """Register ``topic`` as the table ``table``: ``value`` (bytes), ``record_key`` (the Kafka
    key's bytes, NULL for none), ``partition``, ``offset``, ``ts_raw`` and the event-time
    attribute ``rowtime`` with its watermark.

    Every query of the table is a Kafka source of its own, with its own offsets in the
    checkpoint but the same group id: read it once (one query, fanned out) per job.

    Idleness and catch-up pull against each other: a partition that merely waits its turn in
    the consumer's fetches during a backfill must not be declared idle, or the watermark would
    overtake its trucks and time them out. Small per-partition fetches keep the partitions
    interleaved, and the idle timeout (60 s) is far above any such wait.

    A record whose ``ts`` is missing, unparsable or more than five minutes ahead of the clock
    gets timestamp 0, so it can never drag the watermark forward; the Python validation then
    dead-letters it. Offsets: committed group offsets, earliest when the group has none; in a
    restore, the offsets stored in the checkpoint.

    ``watermark_per_record``: emit the watermark after every record instead of every
    ``pipeline.auto-watermark-interval``, so a checkpoint barrier never sits between records
    and the watermark they imply (watermarks are not checkpointed: a job restored from such a
    checkpoint with nothing new to read would never reach that watermark).
    """
    bounded = "'scan.bounded.mode' = 'latest-offset'," if settings.bounded else ""
    emit = "'scan.watermark.emit.strategy' = 'on-event'," if watermark_per_record else ""
    wm_s = settings.out_of_orderness_ms / 1000
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE {table} (
          `record_key` BYTES,
          `value` BYTES,
          `partition` INT METADATA VIRTUAL,
          `offset` BIGINT METADATA VIRTUAL,
          `ts_raw` AS TRY_CAST(JSON_VALUE(CAST(`value` AS STRING), '$.ts') AS BIGINT),
          `rowtime` AS TO_TIMESTAMP_LTZ(
              CASE WHEN TRY_CAST(JSON_VALUE(CAST(`value` AS STRING), '$.ts') AS BIGINT)
                        BETWEEN 0 AND UNIX_TIMESTAMP() * 1000 + 300000
                   THEN TRY_CAST(JSON_VALUE(CAST(`value` AS STRING), '$.ts') AS BIGINT)
                   ELSE 0 END, 3),
          WATERMARK FOR `rowtime` AS `rowtime` - INTERVAL '{wm_s}' SECOND
        ) WITH (
          'connector' = 'kafka',
          'topic' = '{topic}',
          'properties.bootstrap.servers' = '{settings.bootstrap}',
          'properties.group.id' = '{settings.group_id}',
          'properties.auto.offset.reset' = 'earliest',
          'properties.max.partition.fetch.bytes' = '{settings.partition_fetch_bytes}',
          'scan.startup.mode' = 'group-offsets',
          'scan.watermark.idle-timeout' = '{settings.idle_timeout_ms} ms',
          {bounded}
          {emit}
          'key.format' = 'raw',
          'key.fields' = 'record_key',
          'value.format' = 'raw',
          'value.fields-include' = 'EXCEPT_KEY'
        )""")


def kafka_text_sink(t_env: StreamTableEnvironment, settings: JobSettings, topic: str,
                    table: str) -> str:
    """A Kafka sink table taking KEYED_TEXT rows; at-least-once, flushed on checkpoints."""
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE {table} (
          `k` STRING,
          `v` STRING
        ) WITH (
          'connector' = 'kafka',
          'topic' = '{topic}',
          'properties.bootstrap.servers' = '{settings.bootstrap}',
          'properties.linger.ms' = '5',
          'sink.delivery-guarantee' = 'at-least-once',
          'key.format' = 'raw',
          'key.fields' = 'k',
          'value.format' = 'raw',
          'value.fields-include' = 'EXCEPT_KEY'
        )""")
    return table


def attach_sinks(t_env: StreamTableEnvironment, sinks: dict[str, DataStream]) -> None:
    """Insert each KEYED_TEXT stream into its sink table, inside the same job."""
    stmt = t_env.create_statement_set()
    for table, stream in sinks.items():
        stmt.add_insert(table, t_env.from_data_stream(stream))
    stmt.attach_as_datastream()


def dead_letter_sink(env: StreamExecutionEnvironment, letters: DataStream,
                     settings: JobSettings) -> None:
    """Send the KEYED_TEXT dead letters to ``settings.dlq_topic`` through
    ``io.fleetpulse.flink.DeadLetterSink``: at least once, flushed at every checkpoint, and a
    dead letter Kafka refuses is counted and logged instead of failing the task (contract)."""
    from flink_jobs.bundling import use_operators_jar

    use_operators_jar(env)
    gateway = get_gateway()
    props = gateway.jvm.java.util.HashMap()
    props.put("bootstrap.servers", settings.bootstrap)
    props.put("max.request.size", str(DEAD_LETTER_PRODUCER_MAX_BYTES))
    sink = gateway.jvm.io.fleetpulse.flink.DeadLetterSink(settings.dlq_topic, props)
    letters.sink_to(Sink(sink)).name("dlq-sink").uid("dlq-sink")


def dead_letter_row(topic: str, partition: int, offset: int, reason: str, detail: str,
                    raw: bytes, key: bytes | None) -> Row:
    """A `fleet.dlq` record (key: the source topic) for a record that could not be used; the
    record's own Kafka key travels inside it."""
    letter = DeadLetter(topic, partition, offset, reason, detail, raw, int(time.time() * 1000),
                        key)
    return Row(topic, letter.to_json().decode())


def parse_raw_record(parse: Callable[[bytes, int], T | Rejection], value: Row
                     ) -> tuple[bytes, T | Rejection]:
    """A RAW_RECORD row's bytes and what ``parse`` (a pure ``udfs`` validator, given the wall
    clock) makes of them. No input may fail the job: a parser bug becomes a rejection too."""
    raw = bytes(value[0]) if value[0] is not None else b""
    return raw, parse_safely(parse, raw, int(time.time() * 1000))


def parse_safely(parse: Callable[[bytes, int], T | Rejection], raw: bytes, now_ms: int
                 ) -> T | Rejection:
    """What ``parse`` makes of ``raw`` at wall clock ``now_ms``; a parser bug becomes a
    rejection too, since no input may fail the job."""
    try:
        return parse(raw, now_ms)
    except Exception as exc:  # noqa: BLE001 - no input may fail the job
        return Rejection(Reason.MALFORMED_JSON, f"unexpected parse error: {exc!r}"[:200])


def rejection_row(topic: str, value: Row, raw: bytes, rejection: Rejection) -> Row:
    """The `fleet.dlq` record of a rejected RAW_RECORD row (its partition, offset and key
    kept)."""
    key = bytes(value[3]) if len(value) > 3 and value[3] is not None else None
    return dead_letter_row(topic, value[1], value[2], rejection.reason.value, rejection.detail,
                           raw, key)
