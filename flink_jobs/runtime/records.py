"""The rows that cross between the JVM and the jobs' Python operators, and dead letters.

Every input record reaches Python as a RAW_RECORD row (its bytes, partition, offset and Kafka
key), so whatever it holds can be dead-lettered with its origin; outputs for Kafka topics are
KEYED_TEXT rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pyflink.common import Row, Types

from udfs.models import DeadLetter, Reason, Rejection

T = TypeVar("T")

# Rows entering the Python operators: original bytes, where they came from, and their Kafka key
# (kept for the dead letter; None when the record has none).
RAW_RECORD = Types.ROW_NAMED(
    ["value", "partition", "offset", "record_key"],
    [
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
        Types.INT(),
        Types.LONG(),
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
    ],
)
# Rows leaving for a Kafka topic: record key and value, both text.
KEYED_TEXT = Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.STRING()])


def dead_letter_row(
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    detail: str,
    raw: bytes,
    key: bytes | None,
    now_ms: int,
) -> Row:
    """A `fleet.dlq` record (key: the source topic) for a record that could not be used, at
    wall clock ``now_ms``; the record's own Kafka key travels inside it."""
    letter = DeadLetter(topic, partition, offset, reason, detail, raw, now_ms, key)
    return Row(topic, letter.to_json().decode())


def parse_raw_record(
    parse: Callable[[bytes, int], T | Rejection], value: Row, now_ms: int
) -> tuple[bytes, T | Rejection]:
    """A RAW_RECORD row's bytes and what ``parse`` (a pure ``udfs`` validator) makes of them
    at wall clock ``now_ms``. No input may fail the job: a parser bug becomes a rejection too."""
    raw = bytes(value[0]) if value[0] is not None else b""
    return raw, parse_safely(parse, raw, now_ms)


def parse_safely(
    parse: Callable[[bytes, int], T | Rejection], raw: bytes, now_ms: int
) -> T | Rejection:
    """What ``parse`` makes of ``raw`` at wall clock ``now_ms``; a parser bug becomes a
    rejection too, since no input may fail the job."""
    try:
        return parse(raw, now_ms)
    except Exception as exc:  # noqa: BLE001 - no input may fail the job
        return Rejection(Reason.MALFORMED_JSON, f"unexpected parse error: {exc!r}"[:200])


def rejection_row(topic: str, value: Row, raw: bytes, rejection: Rejection, now_ms: int) -> Row:
    """The `fleet.dlq` record of a rejected RAW_RECORD row (its partition, offset and key
    kept)."""
    key = bytes(value[3]) if len(value) > 3 and value[3] is not None else None
    return dead_letter_row(
        topic, value[1], value[2], rejection.reason.value, rejection.detail, raw, key, now_ms
    )
