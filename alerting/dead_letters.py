"""Dead letters of the dispatcher (pure): the ``fleet.dlq`` record for an alert record that
was rejected, bounded whatever the record held (contract, "Dead letter").

The Kafka key of a dead letter is its source topic (contract, topic table); the original key
travels inside it, bounded like ``raw`` (:class:`udfs.models.DeadLetter`).
"""

from __future__ import annotations

from alerting.kafka_io import InRecord, Origin
from udfs.models import DeadLetter, Rejection


def origin(rec: InRecord) -> Origin:
    return Origin(rec.topic, rec.partition, rec.offset)


def dead_letter(rec: InRecord, rejection: Rejection, now_ms: int) -> DeadLetter:
    # A detail can quote an exception's text, which may hold lone surrogates that no UTF-8
    # encoder writes; backslash-escape them here, so encoding the dead letter cannot fail.
    detail = rejection.detail.encode("utf-8", "backslashreplace").decode("utf-8")
    return DeadLetter(
        rec.topic,
        rec.partition,
        rec.offset,
        str(rejection.reason),
        detail,
        rec.value if rec.value is not None else b"",
        now_ms,
        key=rec.key,
    )


def dlq_record(rec: InRecord, rejection: Rejection, now_ms: int) -> tuple[bytes, bytes]:
    """``(kafka_key, value)`` of the dead letter for ``rec``."""
    return rec.topic.encode("utf-8", "backslashreplace"), dead_letter(
        rec, rejection, now_ms
    ).to_json()
