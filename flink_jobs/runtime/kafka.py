"""Kafka sources and sinks of the jobs, as Flink SQL tables, and the dead-letter sink.

Sources use Flink's Kafka connector through a Table API table with the ``raw`` format: every
record arrives as its original bytes with its partition and offset (so any bytes at all can be
dead-lettered with their origin, and nothing can fail the source), and the event-time watermark
is computed in the JVM from the record's ``ts`` per Kafka partition, with idleness. The table is
then turned into a DataStream for the Python operators.
"""

from __future__ import annotations

from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment

from flink_jobs.runtime.operators_jar import use_operators_jar
from flink_jobs.runtime.settings import JobSettings
from udfs.models import DEAD_LETTER_PRODUCER_MAX_BYTES

# Where flink-sql-connector-kafka relocates the Kafka client (login modules are named by class).
FLINK_KAFKA_PACKAGE = "org.apache.flink.kafka.shaded.org.apache.kafka"


def client_properties(settings: JobSettings, own: dict[str, str]) -> str:
    """The table's ``'properties.*'`` options: its ``own`` client settings, the user's
    properties (``--kafka-property``, Java form) over them, and ``--bootstrap``."""
    merged = {
        **own,
        **settings.kafka_properties.java(FLINK_KAFKA_PACKAGE),
        "bootstrap.servers": settings.bootstrap,
    }
    return "\n".join(f"'properties.{sql_text(k)}' = '{sql_text(v)}'," for k, v in merged.items())


def sql_text(text: str) -> str:
    """``text`` inside a SQL string literal."""
    return text.replace("'", "''")


def kafka_raw_source(
    t_env: StreamTableEnvironment, settings: JobSettings, topic: str, table: str
) -> DataStream:
    """Records of ``topic`` as RAW_RECORD rows, event-time stamped from their ``ts`` field
    (the table of :func:`kafka_raw_table`, read once)."""
    kafka_raw_table(t_env, settings, topic, table)
    tbl = t_env.sql_query(f"SELECT `value`, `partition`, `offset`, `record_key` FROM {table}")
    return t_env.to_data_stream(tbl)


def kafka_raw_table(
    t_env: StreamTableEnvironment,
    settings: JobSettings,
    topic: str,
    table: str,
    watermark_per_record: bool = False,
) -> None:
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
    dead-letters it. Offsets: committed group offsets, earliest when the group has none (or
    those of ``--start-timestamp-ms``; ``--stop-timestamp-ms`` ends the read, a backfill's
    range); in a restore, the offsets stored in the checkpoint.

    ``watermark_per_record``: emit the watermark after every record instead of every
    ``pipeline.auto-watermark-interval``, so a checkpoint barrier never sits between records
    and the watermark they imply (watermarks are not checkpointed: a job restored from such a
    checkpoint with nothing new to read would never reach that watermark).
    """
    bounded = "'scan.bounded.mode' = 'latest-offset'," if settings.bounded else ""
    if settings.stop_timestamp_ms is not None:  # a backfill's end (Kafka's offsetsForTimes)
        bounded = (
            "'scan.bounded.mode' = 'timestamp',"
            f"'scan.bounded.timestamp-millis' = '{settings.stop_timestamp_ms}',"
        )
    startup = "'scan.startup.mode' = 'group-offsets',"
    if settings.start_timestamp_ms is not None:  # a backfill's start
        startup = (
            "'scan.startup.mode' = 'timestamp',"
            f"'scan.startup.timestamp-millis' = '{settings.start_timestamp_ms}',"
        )
    emit = "'scan.watermark.emit.strategy' = 'on-event'," if watermark_per_record else ""
    wm_s = settings.out_of_orderness_ms / 1000
    client = client_properties(
        settings,
        {
            "group.id": settings.group_id,
            "auto.offset.reset": "earliest",
            "max.partition.fetch.bytes": str(settings.partition_fetch_bytes),
        },
    )
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
          {client}
          {startup}
          'scan.watermark.idle-timeout' = '{settings.idle_timeout_ms} ms',
          {bounded}
          {emit}
          'key.format' = 'raw',
          'key.fields' = 'record_key',
          'value.format' = 'raw',
          'value.fields-include' = 'EXCEPT_KEY'
        )""")


def kafka_text_sink(
    t_env: StreamTableEnvironment, settings: JobSettings, topic: str, table: str
) -> str:
    """A Kafka sink table taking KEYED_TEXT rows; at-least-once, flushed on checkpoints."""
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE {table} (
          `k` STRING,
          `v` STRING
        ) WITH (
          'connector' = 'kafka',
          'topic' = '{topic}',
          {client_properties(settings, {"linger.ms": "5"})}
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


def dead_letter_sink(
    env: StreamExecutionEnvironment, letters: DataStream, settings: JobSettings
) -> None:
    """Send the KEYED_TEXT dead letters to ``settings.dlq_topic`` through
    ``io.fleetpulse.flink.DeadLetterSink``: at least once, flushed at every checkpoint, and a
    dead letter Kafka refuses is counted and logged instead of failing the task (contract)."""
    use_operators_jar(env)
    gateway = get_gateway()
    props = gateway.jvm.java.util.HashMap()
    props.put("max.request.size", str(DEAD_LETTER_PRODUCER_MAX_BYTES))
    for key, value in settings.kafka_properties.java(FLINK_KAFKA_PACKAGE).items():
        props.put(key, value)
    props.put("bootstrap.servers", settings.bootstrap)
    sink = gateway.jvm.io.fleetpulse.flink.DeadLetterSink(settings.dlq_topic, props)
    letters.sink_to(Sink(sink)).name("dlq-sink").uid("dlq-sink")
