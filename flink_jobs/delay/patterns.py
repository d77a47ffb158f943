"""``delivery_attempts_failed`` by Flink CEP (``MATCH_RECOGNIZE`` over the validated scans)."""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream import DataStream
from pyflink.table import DataTypes, Schema, StreamTableEnvironment

from udfs.shipment_state import AttemptsMatch, DelayConfig

PICKLED = Types.PICKLED_BYTE_ARRAY()


def attempts_matches(
    t_env: StreamTableEnvironment, scans: DataStream, cfg: DelayConfig
) -> DataStream:
    """``delivery_attempts_failed`` by Flink CEP: two failed attempts (distinct scans) of one
    shipment within the window, whatever happens in between, as AttemptsMatch objects.

    ``scans`` are the validated scans (CEP_ROW), with the source's watermarks: the pattern never
    sees a record that validation rejected."""
    t_env.create_temporary_view(
        "valid_scans",
        t_env.from_data_stream(
            scans,
            Schema.new_builder()
            .column("shipment_id", DataTypes.STRING())
            .column("scan_type", DataTypes.STRING())
            .column("scan_id", DataTypes.STRING())
            .column("ts", DataTypes.BIGINT())
            .column_by_expression("rowtime", "TO_TIMESTAMP_LTZ(`ts`, 3)")
            .watermark("rowtime", "SOURCE_WATERMARK()")
            .build(),
        ),
    )
    within_min = max(1, cfg.failed_attempts_within_s // 60)
    matches = t_env.sql_query(f"""
        SELECT shipment_id, first_ts, last_ts FROM valid_scans
        MATCH_RECOGNIZE (
          PARTITION BY shipment_id
          ORDER BY rowtime
          MEASURES F1.ts AS first_ts, F2.ts AS last_ts
          ONE ROW PER MATCH
          AFTER MATCH SKIP PAST LAST ROW
          PATTERN (F1 X* F2) WITHIN INTERVAL '{within_min}' MINUTE(6)
          DEFINE
            F1 AS F1.scan_type = 'DELIVERY_ATTEMPT_FAILED',
            X AS X.scan_type <> 'DELIVERY_ATTEMPT_FAILED',
            F2 AS F2.scan_type = 'DELIVERY_ATTEMPT_FAILED' AND F2.scan_id <> F1.scan_id
        )""")
    return (
        t_env.to_data_stream(matches)
        .map(lambda r: AttemptsMatch(r[0], int(r[1]), int(r[2]), 2), output_type=PICKLED)
        .name("attempts-matches")
        .uid("attempts-matches")
    )
