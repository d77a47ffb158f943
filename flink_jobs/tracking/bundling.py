"""Records handed to Python a bundle at a time: one Python call per shard and flush, not per
record.

In PyFlink's thread mode every record a Python operator receives is a call from the JVM into
the embedded interpreter, under its lock, with its own conversion; at tens of thousands of
records per second that crossing costs more than the work done per record. The JVM operator
``io.fleetpulse.flink.ShardBundler`` (``jvm/src``, built by :mod:`flink_jobs.runtime.operators_jar`)
groups the records by a shard of their key and emits ``Row(shard, bundle)``; the stream is keyed
by shard in the JVM, so a Python ``KeyedProcessFunction`` downstream is called once per bundle,
with the shard as its current key, and decodes the records with :func:`decode_bundle`.

Bundles are flushed before every watermark and checkpoint barrier passes the bundler, so event
time and checkpoints downstream see the records exactly where they would be without it; the
bundler holds no state.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from pyflink.common import Row, Types
from pyflink.common.typeinfo import RowTypeInfo, TypeInformation
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.data_stream import DataStream, KeyedStream
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment

from flink_jobs.runtime.jvm_keying import keyed_on_first_field
from flink_jobs.runtime.operators_jar import use_operators_jar

BUNDLE = Types.PRIMITIVE_ARRAY(Types.BYTE())
_HEADER = struct.Struct(">iqi")  # partition, offset, record key length (-1: null key)
_LENGTH = struct.Struct(">i")  # value length (-1: null value)

# A record of a bundle: partition, offset, Kafka key, value.
BundledRecord = tuple[int, int, bytes | None, bytes | None]


def decode_bundle(bundle: bytes) -> Iterator[BundledRecord]:
    """The ``(partition, offset, key, value)`` records of a bundle, in the order they arrived.

    Raises ``ValueError`` on a truncated bundle (a bug, not bad input: any record bytes fit)."""
    view = memoryview(bundle)
    pos, end = 0, len(bundle)
    while pos < end:
        if end - pos < _HEADER.size:
            raise ValueError(f"bundle truncated in a record header at byte {pos}")
        partition, offset, key_length = _HEADER.unpack_from(view, pos)
        pos += _HEADER.size
        key, pos = _field(view, pos, end, key_length)
        if end - pos < _LENGTH.size:
            raise ValueError(f"bundle truncated in a value length at byte {pos}")
        (value_length,) = _LENGTH.unpack_from(view, pos)
        value, pos = _field(view, pos + _LENGTH.size, end, value_length)
        yield partition, offset, key, value


def _field(view: memoryview, pos: int, end: int, length: int) -> tuple[bytes | None, int]:
    if length < 0:
        return None, pos
    if end - pos < length:
        raise ValueError(f"bundle truncated in a record body at byte {pos}")
    return bytes(view[pos : pos + length]), pos + length


def encode_bundle(records: Sequence[BundledRecord | tuple[int, int, bytes | None]]) -> bytes:
    """What the JVM bundler emits for ``records`` (for tests of the Python side): ``(partition,
    offset, key, value)``, or ``(partition, offset, value)`` for records without a key."""
    parts = []
    for record in records:
        if len(record) == 3:
            partition, offset, key, value = record[0], record[1], None, record[2]
        else:
            partition, offset, key, value = record  # type: ignore[misc]
        parts.append(_HEADER.pack(partition, offset, -1 if key is None else len(key)))
        if key is not None:
            parts.append(key)
        parts.append(_LENGTH.pack(-1 if value is None else len(value)))
        if value is not None:
            parts.append(value)
    return b"".join(parts)


def bundled_by_shard(
    env: StreamExecutionEnvironment,
    t_env: StreamTableEnvironment,
    table: str,
    key_sql: str,
    shards: int,
    max_records: int,
    flush_ms: int,
) -> KeyedStream:
    """The records of a Kafka table (:func:`flink_jobs.runtime.kafka.kafka_raw_table`) in bundles of
    ``Row(shard, bundle)`` keyed by shard, the shard being ``floorMod(hashCode(key), shards)``
    of ``key_sql`` (a STRING expression over the table's columns) computed in the JVM.

    A bundle holds at most ``max_records`` records and waits at most ``flush_ms`` of processing
    time (less at a watermark, a checkpoint barrier or the end of the input)."""
    use_operators_jar(env)
    query = t_env.sql_query(
        f"SELECT {key_sql} AS `k`, `value`, `partition`, `offset`, `record_key` FROM {table}"
    )
    record_type = Types.ROW([Types.STRING(), BUNDLE, Types.INT(), Types.LONG(), BUNDLE])
    records = t_env.to_append_stream(query, record_type)
    out_type = Types.ROW([Types.INT(), BUNDLE])
    operator = get_gateway().jvm.io.fleetpulse.flink.ShardBundler(shards, max_records, flush_ms)
    j_stream = records._j_data_stream.transform(
        "bundle-by-shard", out_type.get_java_type_info(), operator
    ).uid("bundle-by-shard")
    return keyed_on_first_field(DataStream(j_stream), Types.INT(), BUNDLE)


def columns_of(row_type: RowTypeInfo) -> RowTypeInfo:
    """The type of a batch of ``row_type`` rows sent column by column: one array per field
    (not an array of rows: PyFlink's converter reuses one Row object for every element of one)."""
    return Types.ROW([Types.OBJECT_ARRAY(t) for t in row_type.get_field_types()])


def as_columns(rows: list[Row]) -> Row:
    """A batch of rows as :func:`columns_of` types it, for :func:`exploded` to spread out."""
    return Row(*(tuple(column) for column in zip(*rows, strict=True)))


def exploded(batches: DataStream, row_type: TypeInformation, name: str) -> DataStream:
    """The rows of a stream of batches sent column by column (typed :func:`columns_of`
    ``(row_type)``, made by :func:`as_columns`), one record each, with the batch's timestamp:
    spread out in the JVM by ``io.fleetpulse.flink.ExplodeRows``, so that a Python operator can
    emit many rows in one crossing. Needs :func:`use_operators_jar` (which
    :func:`bundled_by_shard` calls) on the job's environment."""
    operator = get_gateway().jvm.io.fleetpulse.flink.ExplodeRows()
    j_rows = batches._j_data_stream.transform(name, row_type.get_java_type_info(), operator).uid(
        name
    )
    # A task of its own: the rows' conversion and sinks then run on a JVM thread beside the
    # Python operator's, not inside its call (a bounded input's end brings a batch of alerts
    # per shard, one for every truck).
    j_rows.disableChaining()
    return DataStream(j_rows)
