"""The dispatcher service: Kafka in, engine, durable outbox, receiver workers out.

Loop: poll ``fleet.alerts`` -> decode (bad records to ``fleet.dlq``) -> engine ingest -> flush
due groups -> one SQLite transaction (engine state + new deliveries) -> hand the deliveries to
the receiver workers -> flush the DLQ producer -> commit Kafka offsets, asynchronously (a
synchronous commit, a broker round trip of 10-40 ms, held up every step). Offsets are therefore
committed only after every record's outcome is durable; a process killed at any moment
re-reads uncommitted records (repeat suppression absorbs them) and re-sends the outbox; the
commit at shutdown waits for the broker.

No record stops the loop (issue 27): whatever its bytes, a record is an alert or a dead letter.
A dead letter that cannot be written is counted (``fleetpulse_alerting_dlq_write_failures``)
and logged with the record's partition and offset, and reading goes on (contract: writing a
dead letter never fails the reader). The commit waits while dead letters are in flight (at most
``dlq_flush_s`` per step, then on later steps), so a restart re-reads a record whose dead letter
was neither written nor given up on.

Re-assertion (issue 29): the sources re-send every open alert's trigger periodically; every few
seconds the loop resolves, through the engine, each firing alert not re-asserted within
``global.resolve_timeout`` (:meth:`Dispatcher._sweep`). Two guards against false resolves: an
assertion counts as no older than this process's start, and the sweep runs only while the
consumer is caught up (its last poll returned less than a full batch, and the broker confirms
it is less than a batch behind), so what a lagging dispatcher has not read yet, or cannot
read while the broker is unreachable, is not resolved.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alerting import AlertingError, ConfigError
from alerting.api import AlertApi, ApiServer
from alerting.config import ALLOW_DEMO_SECRET_ENV, Config, demo_secret_problems
from alerting.dead_letters import dlq_record, origin
from alerting.delivery import OutcomeRecorder, ReceiverWorker, Transport, send_once, wall_ms
from alerting.engine import Engine
from alerting.instance_lock import InstanceLock
from alerting.kafka_io import AlertSource, DeadLetterProducer, InRecord, WriteFailure
from alerting.metrics import Metrics, MetricsServer
from alerting.records import decode
from alerting.store import OutboxItem, Store
from udfs.contract import DEFAULT_TOPICS
from udfs.kafka_properties import NONE, KafkaProperties
from udfs.models import Reason, Rejection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    state_dir: str
    alerts_topic: str = DEFAULT_TOPICS.alerts
    dlq_topic: str = DEFAULT_TOPICS.dlq
    group_id: str = "fleetpulse-alerting"
    # static group membership: a restarted dispatcher with the same id gets its partitions back
    # at once instead of waiting for the old member's session to expire
    instance_id: str | None = None
    session_timeout_ms: int = 10_000
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 where a scraper reaches it from outside
    # Alertmanager-shaped API v2 (alerting.api): off unless a port is given
    api_port: int | None = None
    api_host: str = "127.0.0.1"
    config_text: str = ""  # the configuration file, shown (redacted) by /api/v2/status
    kafka_properties: KafkaProperties = NONE  # the user's client properties (security)
    poll_ms: int = 100
    max_poll_records: int = 500
    dlq_flush_s: float = 1.0  # longest wait per step for dead letters to be acknowledged
    # sign webhooks with the public demo secret (only `fleetpulse up` sets the variable)
    allow_demo_secret: bool = field(
        default_factory=lambda: os.environ.get(ALLOW_DEMO_SECRET_ENV, "") in ("1", "true", "yes")
    )


class Dispatcher:
    def __init__(
        self,
        cfg: Config,
        settings: Settings,
        store: Store | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = wall_ms,
        transports: dict[str, Transport] | None = None,
    ) -> None:
        if not settings.allow_demo_secret and (problems := demo_secret_problems(cfg)):
            raise ConfigError("refusing to start: " + "\n".join(problems))
        self.cfg = cfg
        self.settings = settings
        self.store = store or Store(settings.state_dir)
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.stop_event = threading.Event()
        self.state = self.store.load_engine_state()
        self.engine = Engine(cfg, self.state, self.store.silences())
        self._data_version = self.store.data_version()
        transports = transports or {}
        self.recorder = OutcomeRecorder(self.store)
        self._dead: deque[OutboxItem] = deque()  # dead-lettered events, from worker threads
        self.workers = {
            r.name: ReceiverWorker(
                r,
                self.store,
                self.metrics,
                transports.get(r.name),
                clock,
                recorder=self.recorder,
                on_dead=self._dead.append,
            )
            for r in cfg.receivers
        }
        self._silences_checked_ms = 0
        self.last_loop_ms = clock()
        self.server: MetricsServer | None = None
        self.api_server: ApiServer | None = None
        self.instance_lock = InstanceLock(settings.state_dir)
        self._gauges_at = 0
        self._commit_owed = False  # records read whose offsets are not committed yet
        # re-assertion sweep: assertions count as no older than the process start
        self.started_ms = clock()
        self._swept_ms = self.started_ms
        self._caught_up = False  # the last poll returned less than a full batch

    # -- health ------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        age_s = (self.clock() - self.last_loop_ms) / 1000
        detail = {
            "last_loop_age_s": round(age_s, 3),
            "receivers": {
                n: {"circuit": w.breaker.state, "queued": w.pending()}
                for n, w in self.workers.items()
            },
        }
        return age_s < 30 and not self.stop_event.is_set(), detail

    def _update_gauges(self, now: int) -> None:
        if now - self._gauges_at < 2000:
            return
        self._gauges_at = now
        counts = self.state.open_count()
        for name in self.workers:
            self.metrics.open_alerts.labels(name).set(counts.get(name, 0))

    def _reload_silences(self, now_ms: int) -> None:
        if now_ms - self._silences_checked_ms < 500:
            return
        self._silences_checked_ms = now_ms
        v = self.store.data_version()
        if v != self._data_version:
            self._data_version = v
            self.engine.silences = tuple(self.store.silences())

    # -- main loop ---------------------------------------------------------------------------
    def _start_servers(self) -> None:
        """The metrics server and the API, each if its port is set."""
        s = self.settings
        if s.metrics_port is not None:
            try:
                self.server = MetricsServer(
                    self.metrics, s.metrics_port, self.health, host=s.metrics_host
                ).start()
            except OSError as exc:
                raise AlertingError(
                    f"cannot serve metrics on {s.metrics_host}:{s.metrics_port}"
                    f" (--metrics-host, --metrics-port): "
                    f"{exc.strerror or exc}"
                ) from None
        if s.api_port is not None:
            api = AlertApi(Store(s.state_dir), self.cfg, s.config_text, self.started_ms)
            try:
                self.api_server = ApiServer(api, s.api_port, host=s.api_host).start()
            except OSError as exc:
                api.store.close()
                raise AlertingError(
                    f"cannot serve the API on {s.api_host}:{s.api_port}"
                    f" (--api-host, --api-port): {exc.strerror or exc}"
                ) from None

    def _stop_servers(self) -> None:
        if self.server:
            self.server.stop()
        if self.api_server:
            self.api_server.stop()
            self.api_server.api.store.close()

    def run(self) -> None:
        s = self.settings
        try:
            self.instance_lock.acquire()  # one dispatcher per state directory
            self._start_servers()
        except (AlertingError, OSError) as exc:
            self._stop_servers()
            self.instance_lock.release()
            self.store.close()
            if isinstance(exc, AlertingError):
                raise
            raise AlertingError(f"cannot use state directory {s.state_dir}: {exc}") from None
        backlog: dict[str, list[Any]] = {}
        for item in self.store.outbox():
            backlog.setdefault(item.receiver, []).append(item)
        for name, items in backlog.items():
            if name in self.workers:
                self.workers[name].submit(items)
            else:
                log.warning(
                    "%d queued deliveries for receiver %r, which is no longer "
                    "configured, stay in the outbox",
                    len(items),
                    name,
                )
        for w in self.workers.values():
            w.start()
        client = s.kafka_properties.librdkafka()
        consumer = AlertSource(
            s.bootstrap, s.alerts_topic, s.group_id, s.instance_id, s.session_timeout_ms, client
        )
        producer = DeadLetterProducer(
            s.bootstrap, s.dlq_topic, self.dlq_write_failed, properties=client
        )
        log.info("alert dispatcher running: %s -> %s", s.alerts_topic, ", ".join(self.workers))
        try:
            while not self.stop_event.is_set():
                self._step(consumer, producer)
        finally:
            try:
                left = producer.close(10)
                if left:
                    log.warning(
                        "%d dead letters unacknowledged at shutdown: their records "
                        "are read again after a restart",
                        left,
                    )
                elif self._commit_owed:
                    consumer.commit()
                consumer.close()
            finally:
                for w in self.workers.values():
                    w.stop()
                self.recorder.stop()
                self._stop_servers()
                self.store.close()
                self.instance_lock.release()

    def _step(self, consumer: AlertSource, producer: DeadLetterProducer) -> None:
        s = self.settings
        now = self.clock()
        self.last_loop_ms = now
        nxt = self.engine.next_flush_ms()
        timeout = s.poll_ms if nxt is None else max(0, min(s.poll_ms, nxt - now))
        batch = consumer.poll(timeout, s.max_poll_records)
        self._caught_up = len(batch) < s.max_poll_records
        now = self.clock()
        dead = 0
        for rec in batch:
            try:
                result = decode(rec.value, rec.timestamp_ms)
                if not isinstance(result, Rejection):
                    self.engine.ingest(result, now)
            except Exception as exc:  # noqa: BLE001 - never crash on input
                log.exception("cannot process record %s:%s", rec.partition, rec.offset)
                result = Rejection(Reason.BAD_VALUE, f"internal error: {exc!r}"[:300])
            if isinstance(result, Rejection):
                dead += 1
                self._dead_letter(producer, rec, result, now)
                self.metrics.records.labels("malformed").inc()
            else:
                self.metrics.records.labels("accepted").inc()
        self._reload_silences(now)
        self._expire_dead_triggers()
        self._sweep(now, consumer)
        flush_now = self.clock()
        notes, dropped = self.engine.flush_due(flush_now)
        for d in dropped:
            self.metrics.suppressed.labels(d.receiver, d.reason).inc()
        st = self.state
        items = []
        if notes or st.dirty():
            # created_ms = the flush time = OpenAlert.last_sent_ms (see _expire_dead_triggers)
            items = self.store.commit_batch(st, notes, flush_now)
        # the deliveries are durable: the workers start on them before the loop waits on Kafka
        by_receiver: dict[str, list[Any]] = {}
        for it in items:
            by_receiver.setdefault(it.receiver, []).append(it)
        for name, its in by_receiver.items():
            worker = self.workers.get(name)
            if worker is not None:
                worker.submit(its)
        if dead:
            producer.flush(s.dlq_flush_s)
        else:
            producer.serve()
        self._commit_owed |= bool(batch)
        if self._commit_owed and producer.in_flight() == 0:
            consumer.commit(asynchronous=True)
            self._commit_owed = False
        self._update_gauges(now)

    def sweep_interval_ms(self) -> int:
        """How often the loop looks for timed-out alerts: a tenth of ``resolve_timeout``,
        between 1 s and 5 s."""
        return max(1000, min(5000, self.cfg.global_.resolve_timeout_ms // 10))

    def _sweep(self, now: int, consumer: AlertSource) -> None:
        """Resolve firing alerts whose source has not re-asserted them within
        ``resolve_timeout`` (off at 0), while the consumer is caught up: its last poll returned
        less than a full batch, and the broker confirms it is within a batch of the end of its
        partitions."""
        timeout = self.cfg.global_.resolve_timeout_ms
        if not timeout or not self._caught_up or now - self._swept_ms < self.sweep_interval_ms():
            return
        self._swept_ms = now
        if not self.engine.state.active or not consumer.caught_up(self.settings.max_poll_records):
            return
        resolved = self.engine.resolve_timed_out(now, timeout, self.started_ms)
        if resolved:
            self.metrics.timeout_resolves.inc(len(resolved))
            log.info(
                "resolved %d alerts not re-asserted within resolve_timeout (%d ms), e.g. %s",
                len(resolved),
                timeout,
                resolved[0].dedup_key,
            )

    def _expire_dead_triggers(self) -> None:
        """Tell the engine of triggers that went to dead letters (``Engine.not_accepted``):
        the next trigger of such a key (a source re-asserting it) is sent, not suppressed."""
        while self._dead:
            item = self._dead.popleft()
            if item.event_action != "resolve":
                self.engine.not_accepted(item.dedup_key, item.receiver, item.created_ms)

    def _dead_letter(
        self, producer: DeadLetterProducer, rec: InRecord, rejection: Rejection, now: int
    ) -> None:
        try:
            key, value = dlq_record(rec, rejection, now)
        except Exception as exc:  # noqa: BLE001 - a dead letter never stops the reader
            self.dlq_write_failed(WriteFailure(origin(rec), f"cannot encode: {exc!r}"[:300]))
            return
        producer.send(key, value, origin(rec))

    def dlq_write_failed(self, failure: WriteFailure) -> None:
        """A dead letter is lost: count it, and log where its record is, so it can be read
        again from ``fleet.alerts`` while the topic retains it."""
        self.metrics.dlq_write_failures.inc()
        o = failure.origin
        log.error(
            "dead letter not written to %s for %s partition %d offset %d: %s",
            self.settings.dlq_topic,
            o.topic,
            o.partition,
            o.offset,
            failure.error,
        )


@dataclass
class ReplayResult:
    delivered: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)  # (dead-letter id, error)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (dead-letter id, why)


def replay(
    cfg: Config,
    store: Store,
    receiver: str | None = None,
    ids: list[int] | None = None,
    transports: dict[str, Transport] | None = None,
    clock: Callable[[], int] = wall_ms,
) -> ReplayResult:
    """Re-send dead letters once each, oldest event first, under the dispatcher's per-key rule:
    only the newest event of a key to a receiver is sent, so a dead letter is skipped when a
    later event of its key settled (was delivered, or was a resolve skipped as not open), is
    queued in the outbox, or is a later dead letter; a resolve is sent only to a receiver that
    accepted a trigger of its key. Each check and send holds the store's write lock, so a
    running dispatcher queues nothing for the key in between. Delivered ones are removed,
    failed ones keep their row with the new error, skipped ones stay listed."""
    from alerting.delivery import make_transport

    transports = dict(transports or {})
    result = ReplayResult()
    try:
        for dl in store.dead_letters(receiver, ids):
            try:
                rcfg = cfg.receiver(dl.receiver)
            except KeyError:
                result.failed.append(
                    (dl.id, f"receiver {dl.receiver!r} is not in the configuration")
                )
                continue
            t = transports.get(dl.receiver) or transports.setdefault(
                dl.receiver, make_transport(rcfg)
            )

            def send(rcfg: Any = rcfg, t: Transport = t, dl: Any = dl) -> Any:
                return send_once(rcfg, t, dl.event, dl.outbox_id, clock())

            status, detail = store.replay_one(dl, send, clock)
            if status == "delivered":
                result.delivered += 1
            elif status == "failed":
                result.failed.append((dl.id, detail))
            else:
                result.skipped.append((dl.id, detail))
    finally:
        for t in transports.values():
            t.close()
    return result
