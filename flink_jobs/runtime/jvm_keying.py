"""Keying a stream in the JVM: the key is a SQL expression, not a Python call per record.

PyFlink's ``DataStream.key_by`` runs its key selector in a Python operator (``AddKey``, which
emits ``Row(key, value)`` for Java to partition on). In thread mode that operator is one more
Python call per record, one more pickled hand-over, and one more task thread taking turns at
the interpreter lock with the operators that do the real work. When the key can be read by
SQL (``JSON_VALUE`` of the record's bytes), the Table runtime computes it in the JVM and the
stream of ``Row(key, value)`` is keyed with the Java key selector PyFlink itself uses, so a
Python ``KeyedProcessFunction`` downstream sees exactly what it sees after ``key_by``. A Python
operator whose output already is ``Row(key, value)`` is keyed the same way
(:func:`keyed_on_first_field`): the key it computes anyway costs no second call.

This relies on PyFlink internals (``KeyByKeySelector`` and the ``KeyedStream`` constructor);
``tests/flink/test_jvm_keying.py`` pins down the behaviour the jobs depend on.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.common.typeinfo import RowTypeInfo, TypeInformation
from pyflink.datastream.data_stream import DataStream, KeyedStream
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment


def keyed_by_sql(
    t_env: StreamTableEnvironment, table: str, key_sql: str, value_type: RowTypeInfo
) -> KeyedStream:
    """The rows of ``table`` (its columns, in the order of ``value_type``'s fields) keyed by
    ``key_sql``, a STRING expression over those columns that must never be NULL."""
    key_type = Types.STRING()
    columns = ", ".join(f"`{name}`" for name in value_type.get_field_names())
    query = t_env.sql_query(f"SELECT {key_sql} AS `k`, ROW({columns}) AS `v` FROM {table}")
    # Legacy conversion on purpose: it yields RowTypeInfo rows (fields mapped by position),
    # which the Python keyed operator requires; to_data_stream's ExternalTypeInfo is refused.
    with_key = t_env.to_append_stream(query, Types.ROW([key_type, value_type]))
    return keyed_on_first_field(with_key, key_type, value_type)


def keyed_on_first_field(
    stream: DataStream, key_type: TypeInformation, value_type: TypeInformation
) -> KeyedStream:
    """A stream of ``Row(key, value)`` (typed ``Types.ROW([key_type, value_type])``) keyed by
    ``key``; the keyed function downstream receives ``value``."""
    j_keyed = stream._j_data_stream.keyBy(
        get_gateway().jvm.KeyByKeySelector(), Types.ROW([key_type]).get_java_type_info()
    )
    return KeyedStream(j_keyed, value_type, stream)
