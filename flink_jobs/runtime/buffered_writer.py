"""Writing Redis from a job so that a restart from a checkpoint loses no write.

A Python operator in thread mode has no hook that runs before a checkpoint barrier, so writes
kept in a Python list could be lost: done in the checkpoint, never written. (The bundled
tracking function has one: the checkpoint marker its JVM bundler sends,
flink_jobs.tracking.shard_state;
it writes Redis itself.) The jobs therefore
key their Redis writes by shard and keep them in Flink list state until a short
processing-time tick writes them as one batch: a checkpoint holds every write not yet made,
and a restore makes it again (the writers are idempotent). The end of a bounded input fires an
event-time timer too, because processing-time timers do not fire once the input has ended.
"""

from __future__ import annotations

import zlib
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction
from pyflink.datastream.state import ListStateDescriptor

from flink_jobs.runtime.clock import Clock, wall_clock_ms
from flink_jobs.runtime.metrics import OperatorCounts
from flink_jobs.runtime.settings import BufferedWriterSettings
from flink_jobs.runtime.timers import END_OF_INPUT_TIMER, TimersOnce


def writer_shards(parallelism: int) -> int:
    """How many shards a job's Redis writes are keyed by: two per parallel instance (at the
    job's parallelism, from its flag or the cluster), so each instance batches a few shards'
    writes per tick."""
    return max(1, parallelism) * 2


def shard_of(key: str, shards: int) -> int:
    """Stable across processes and restarts (Python's hash() of str is not)."""
    return zlib.crc32(key.encode()) % shards


class BufferedWriterFunction(KeyedProcessFunction):
    """Keyed by shard: buffers each record in list state and hands the shard's records, in
    arrival order, to :meth:`write` on the next tick of ``redis_flush_ms``. A subclass whose
    elements are lists of records (one per bundle) flattens them in :meth:`unpack`.

    Subclasses name their list state (``buffer_state``: it is part of their checkpoints, so it
    must not change) and the kind of record they write (the ``kind`` label of the
    ``redis_writes`` count), and implement :meth:`open_writer`,
    :meth:`write` and, for periodic upkeep, :meth:`after_flush`.
    """

    buffer_state = "pending"
    written_kind = "record"

    def __init__(self, settings: BufferedWriterSettings, clock: Clock = wall_clock_ms) -> None:
        self.settings = settings
        self.clock = clock

    def open(self, runtime_context: Any) -> None:
        self.buffer = runtime_context.get_list_state(
            ListStateDescriptor(self.buffer_state, Types.PICKLED_BYTE_ARRAY())
        )
        self.timers = TimersOnce()
        self.counters = OperatorCounts(runtime_context.get_metrics_group())
        self.open_writer(runtime_context)

    def open_writer(self, runtime_context: Any) -> None:
        raise NotImplementedError

    def write(self, items: list[Any]) -> None:
        raise NotImplementedError

    def after_flush(self) -> None:
        """Runs on every tick, after the shard's buffer is written."""

    def unpack(self, buffered: list[Any]) -> list[Any]:
        """The records to write, from the buffered elements (one record each, by default)."""
        return buffered

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        self.buffer.add(value)
        self.timers.processing_tick(ctx, self.settings.redis_flush_ms)
        self.timers.event(ctx, END_OF_INPUT_TIMER)
        return iter(())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        buffered = list(self.buffer.get() or [])
        if buffered:
            items = self.unpack(buffered)
            self.write(items)
            self.counters.inc("redis_writes", len(items), (("kind", self.written_kind),))
            self.buffer.clear()
        self.after_flush()
        return iter(())
