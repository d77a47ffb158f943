"""Where records go: Kafka (batched, compressed producer) or a JSONL file; and the live
progress line. The only I/O of the simulator besides reading files."""

from __future__ import annotations

import base64
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from simulator import SimulatorError
from simulator.fleet import GPS, Record
from udfs.contract import DEFAULT_TOPICS, TopicNames
from udfs.kafka_properties import NONE, KafkaProperties, KafkaPropertyError

log = logging.getLogger(__name__)


class Sink(Protocol):
    def send(self, rec: Record) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class KafkaSink:
    """A producer tuned for throughput: large batches, a short linger, acks=1, optional
    compression. Uses confluent-kafka (librdkafka: ~3x kafka-python's rate, measured by
    :mod:`bench.simulator_producer`) and falls back to kafka-python when it is not installed."""

    def __init__(
        self,
        bootstrap: str,
        topics: TopicNames = DEFAULT_TOPICS,
        linger_ms: int = 20,
        batch_bytes: int = 1024 * 1024,
        compression: str | None = None,
        acks: int = 1,
        client: str = "auto",
        properties: KafkaProperties = NONE,
    ) -> None:
        """``properties``: the user's Kafka client properties (security), over ours."""
        self.topic_of = {GPS: topics.gps, "scans": topics.scans}
        self.errors = 0
        self._ck: Any = None
        self._kp: Any = None
        if client in ("auto", "confluent"):
            try:
                import confluent_kafka
            except ImportError:
                if client == "confluent":
                    raise SimulatorError("confluent-kafka is not installed") from None
            else:
                conf = {
                    "bootstrap.servers": bootstrap,
                    "acks": acks,
                    "linger.ms": linger_ms,
                    "batch.size": batch_bytes,
                    "compression.type": compression or "none",
                    "queue.buffering.max.messages": 1_000_000,
                    "queue.buffering.max.kbytes": 512 * 1024,
                    "error_cb": self._on_error,
                    **properties.librdkafka(),
                }
                try:
                    self._ck = confluent_kafka.Producer(conf)
                except confluent_kafka.KafkaException as exc:  # a property librdkafka lacks
                    raise SimulatorError(f"Kafka producer: {exc.args[0].str()}") from None
                return
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            client_properties = properties.kafka_python()
        except KafkaPropertyError as exc:
            raise SimulatorError(str(exc)) from None
        try:
            self._kp = KafkaProducer(
                bootstrap_servers=bootstrap,
                acks=acks,
                linger_ms=linger_ms,
                batch_size=batch_bytes,
                compression_type=compression,
                max_request_size=4 * 1024 * 1024,
                retries=5,
                **client_properties,
            )
        except KafkaError as exc:
            raise SimulatorError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc

    def _on_error(self, err: Any) -> None:
        """librdkafka's client-level errors: most are passing (a broker restarting refuses
        connections; the producer retries), and a record that is really lost reaches
        :meth:`_on_delivery`. Only a fatal error stops the simulator."""
        if getattr(err, "fatal", lambda: False)():
            raise SimulatorError(f"Kafka producer failed: {err}")
        log.warning("Kafka producer: %s (retrying)", err)

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors += 1  # a record librdkafka gave up on: flush() reports them

    def send(self, rec: Record) -> None:
        topic = self.topic_of[rec.topic]
        if self._kp is not None:
            self._kp.send(topic, value=rec.value, key=rec.key)
            return
        try:
            self._ck.produce(topic, rec.value, rec.key, on_delivery=self._on_delivery)
        except BufferError:  # local queue full: let librdkafka drain, then retry once
            self._ck.poll(0.05)
            self._ck.produce(topic, rec.value, rec.key, on_delivery=self._on_delivery)
        self._n = getattr(self, "_n", 0) + 1
        if self._n % 10_000 == 0:
            self._ck.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        if self._kp is not None:
            self._kp.flush(timeout=timeout_s)
            return
        if self._ck is None:
            return
        left = self._ck.flush(timeout_s)
        if left:
            raise SimulatorError(f"{left} records not acknowledged by Kafka after {timeout_s} s")
        if self.errors:
            raise SimulatorError(f"{self.errors} records failed to reach Kafka")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._kp is not None:
                self._kp.close()
            self._ck = self._kp = None  # librdkafka's threads end with the handle


class JsonlSink:
    """One JSON object per line: ``topic`` (kind), ``key``, ``emit_ms``, ``value`` (the record
    as text, so broken JSON survives) or ``value_b64`` when it is not UTF-8."""

    def __init__(self, path: Path) -> None:
        self.fh: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()

    def send(self, rec: Record) -> None:
        self.fh.write(encode_line(rec))

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def encode_line(rec: Record) -> bytes:
    d: dict[str, Any] = {"topic": rec.topic, "key": rec.key.decode(), "emit_ms": rec.emit_ms}
    try:
        d["value"] = rec.value.decode("utf-8")
    except UnicodeDecodeError:
        d["value_b64"] = base64.b64encode(rec.value).decode("ascii")
    return orjson.dumps(d) + b"\n"


def decode_line(line: bytes, where: str) -> Record:
    try:
        d = orjson.loads(line)
        value = d["value"].encode() if "value" in d else base64.b64decode(d["value_b64"])
        return Record(str(d["topic"]), str(d["key"]).encode(), value, int(d["emit_ms"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SimulatorError(f"{where}: not a simulator JSONL record ({exc})") from exc


def read_jsonl(path: Path) -> Iterator[Record]:
    """Records of a file written by :class:`JsonlSink` (blank lines skipped)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise SimulatorError(f"cannot read {path}: {exc}") from exc
    with fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                yield decode_line(line, f"{path}:{n}")


class Progress:
    """A single self-rewriting status line (only on a terminal unless forced)."""

    def __init__(
        self, stream: IO[str] = sys.stderr, every_s: float = 0.5, enabled: bool | None = None
    ) -> None:
        self.stream = stream
        self.every_s = every_s
        self.enabled = stream.isatty() if enabled is None else enabled
        self.t0 = time.monotonic()
        self.last = 0.0
        self.last_n = 0
        self.counts: dict[str, int] = {}
        self.total = 0

    def add(self, rec: Record) -> None:
        self.total += 1
        self.counts[rec.topic] = self.counts.get(rec.topic, 0) + 1
        if self.enabled and self.total % 512 == 0:
            now = time.monotonic()
            if now - self.last >= self.every_s:
                self._draw(now, rec.emit_ms)

    def _draw(self, now: float, event_ms: int) -> None:
        rate = (self.total - self.last_n) / max(1e-6, now - self.last) if self.last else 0.0
        self.last, self.last_n = now, self.total
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event_ms / 1000))
        parts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        self.stream.write(
            f"\r{now - self.t0:7.1f}s  {rate:9.0f} rec/s  total={self.total} "
            f"{parts}  event time {when}Z "
        )
        self.stream.flush()

    def summary(self) -> str:
        dt = time.monotonic() - self.t0
        parts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        rate = self.total / max(dt, 1e-6)
        return f"sent {self.total} records ({parts}) in {dt:.1f}s, {rate:.0f}/s"

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")
        self.stream.write(self.summary() + "\n")
        self.stream.flush()
