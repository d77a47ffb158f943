"""Delivery to receivers: one :class:`ReceiverWorker` per receiver (its own connection pool,
sender threads and circuit breaker, so a dead or slow endpoint only ties up its own threads;
the HTTP transports and their per-attempt deadline are in alerting/http_client.py).

Order: deliveries of one ``dedup_key`` to one receiver go one at a time, oldest first (a resolve
never overtakes its trigger); different keys go in parallel, up to ``max_in_flight``.
An event is settled when delivered, dead-lettered or skipped; the next event of its key to that
receiver is released only once that outcome is committed to SQLite (outcomes of different keys
are still written in batches by one thread). So after a crash the outbox never holds a trigger
whose resolve the receiver already accepted (issue 29).

A resolve is sent only if the receiver accepted a trigger/acknowledge of its key (the store's
``accepted`` table); otherwise, e.g. after its trigger went to dead letters, it is skipped.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from alerting import backoff, wire
from alerting.backoff import CircuitBreaker, Outcome
from alerting.config import ReceiverConfig
from alerting.failure_notice import FailureNotice
from alerting.http_client import HttpxTransport, StdlibTransport, Transport, wall_ms
from alerting.metrics import Metrics
from alerting.store import OutboxItem, Store
from udfs.printable import printable

log = logging.getLogger(__name__)


__all__ = ["HttpxTransport", "ReceiverWorker", "StdlibTransport", "Transport", "wall_ms"]


def make_transport(cfg: ReceiverConfig) -> Transport:
    if cfg.http_client == "httpx":
        return HttpxTransport(cfg.max_in_flight)
    return StdlibTransport()


def send_once(
    cfg: ReceiverConfig, transport: Transport, event: bytes, delivery_id: int, now_ms: int
) -> Outcome:
    payload = wire.body(cfg, event)
    hdrs = wire.headers(cfg, payload, delivery_id, now_ms // 1000)
    return transport.post(cfg.endpoint, payload, hdrs, cfg.timeout_ms / 1000)


Then = Callable[[], None] | None


class OutcomeRecorder:
    """One writer thread that records delivery outcomes in batches (one transaction per batch,
    in the order they happened) and then runs each outcome's ``then`` (the worker releases the
    key's next event there). An outcome not yet written when the process dies means a re-send
    after restart (at-least-once) of that event only: no later event of its key was sent."""

    def __init__(self, store: Store, max_batch: int = 1000) -> None:
        self.store = store
        self.max_batch = max_batch
        self.cond = threading.Condition()
        self.ops: list[tuple[str, OutboxItem, str, int, Then]] = []
        self.busy = False
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="outcomes", daemon=True)
        self.thread.start()

    def record(
        self, kind: str, item: OutboxItem, error: str, now_ms: int, then: Then = None
    ) -> None:
        """Queue an outcome; ``then`` runs on this recorder's thread once it is committed."""
        with self.cond:
            self.ops.append((kind, item, error, now_ms, then))
            self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.ops and not self.stopping:
                    self.cond.wait(1.0)
                if not self.ops and self.stopping:
                    return
                batch, self.ops = self.ops[: self.max_batch], self.ops[self.max_batch :]
                self.busy = True
            try:
                self.store.apply_outcomes([(k, it, e, t) for k, it, e, t, _ in batch])
            except Exception:  # noqa: BLE001 - keep them and try again
                log.exception("cannot record %d delivery outcomes; retrying", len(batch))
                with self.cond:
                    self.ops[:0] = batch
                time.sleep(0.2)
            else:
                for *_, then in batch:
                    if then is not None:
                        try:
                            then()
                        except Exception:  # noqa: BLE001 - one callback must not stop the rest
                            log.exception("after recording a delivery outcome")
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while self.ops or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def stop(self) -> None:
        self.flush()
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(5)


class ReceiverWorker:
    def __init__(
        self,
        cfg: ReceiverConfig,
        store: Store,
        metrics: Metrics,
        transport: Transport | None = None,
        clock: Callable[[], int] = wall_ms,
        rng: random.Random | None = None,
        recorder: OutcomeRecorder | None = None,
        on_dead: Callable[[OutboxItem], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.on_dead = on_dead  # told (after the commit) of each dead-lettered event
        self.store = store
        self.metrics = metrics
        self.own_recorder = recorder is None
        self.recorder = recorder or OutcomeRecorder(store)
        name = cfg.name
        self._m_delivered = metrics.deliveries.labels(name, "delivered")
        self._m_retry = metrics.deliveries.labels(name, "retry")
        self._m_dead = metrics.deliveries.labels(name, "dead_letter")
        self._m_skipped = metrics.deliveries.labels(name, "skipped")
        self._m_retries = metrics.retries.labels(name)
        self._m_dead_letters = metrics.dead_letters.labels(name)
        self._m_latency = metrics.latency.labels(name)
        self._m_circuit = metrics.circuit.labels(name)
        self._m_queued = metrics.queued.labels(name)
        self.transport = transport or make_transport(cfg)
        self.clock = clock
        self.rng = rng or random.Random()
        self.breaker = CircuitBreaker(cfg.circuit_breaker)
        # a warning at most once a minute while the receiver fails (issue 30)
        self.notice = FailureNotice(cfg.name, cfg.endpoint)
        self.cond = threading.Condition()
        self.items: dict[int, OutboxItem] = {}
        self.by_key: dict[str, deque[int]] = {}
        self.heap: list[tuple[int, int]] = []  # (next_at_ms, id) of ready heads
        self.stopping = False
        self.threads = [
            threading.Thread(target=self._run, name=f"send-{cfg.name}-{i}", daemon=True)
            for i in range(cfg.max_in_flight)
        ]
        self._set_gauges()

    def start(self) -> ReceiverWorker:
        for t in self.threads:
            t.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.own_recorder:
            self.recorder.stop()
        self.transport.close()

    def submit(self, items: Iterable[OutboxItem]) -> None:
        with self.cond:
            ready = 0
            for it in items:
                if it.id in self.items:
                    continue
                self.items[it.id] = it
                q = self.by_key.setdefault(it.dedup_key, deque())
                q.append(it.id)
                if len(q) == 1:
                    heapq.heappush(self.heap, (it.next_at_ms, it.id))
                    ready += 1
            self._m_queued.set(len(self.items))
            if ready and self.breaker.state != "open":  # an open breaker: nobody can send
                self.cond.notify(min(ready, len(self.threads)))

    def pending(self) -> int:
        with self.cond:
            return len(self.items)

    def _set_gauges(self) -> None:
        self._m_circuit.set(backoff.STATE_VALUE[self.breaker.state])
        self._m_queued.set(len(self.items))

    def _take(self) -> tuple[OutboxItem, bool] | None:
        """The next due item and whether its retry budget (age) is already spent; it waits
        while the circuit is open (an expired item is handed out anyway, to be dead-lettered)."""
        with self.cond:
            while not self.stopping:
                now = self.clock()
                if self.heap and self.heap[0][0] <= now:
                    head = self.items[self.heap[0][1]]
                    expired = now - head.created_ms > self.cfg.retry.max_age_ms
                    if expired or self.breaker.allow(now):
                        heapq.heappop(self.heap)
                        self._set_gauges()
                        return head, expired
                    # breaker open: until the probe time; a probe in flight notifies when done
                    wait_s = max(0.05, (self.breaker.retry_at_ms() - now) / 1000)
                    if self.breaker.probing:
                        wait_s = 1.0
                elif self.heap:
                    wait_s = max(0.001, (self.heap[0][0] - now) / 1000)
                else:
                    wait_s = 1.0
                self.cond.wait(min(wait_s, 1.0))
        return None

    def _finish(self, item: OutboxItem, requeue_at_ms: int | None) -> None:
        with self.cond:
            if requeue_at_ms is not None:
                heapq.heappush(self.heap, (requeue_at_ms, item.id))
            else:
                del self.items[item.id]
                q = self.by_key[item.dedup_key]
                q.popleft()
                if q:
                    nxt = self.items[q[0]]
                    heapq.heappush(self.heap, (nxt.next_at_ms, nxt.id))
                else:
                    del self.by_key[item.dedup_key]
            self._set_gauges()
            self.cond.notify_all()

    def _notice(self, outcome: Outcome, now: int) -> str | None:
        """The line to log about this attempt (rate-limited), under ``self.cond``."""
        if outcome.delivered:
            return self.notice.succeeded()
        reason = printable(outcome.describe(), 200)
        return self.notice.failed(reason, now, len(self.items), self.breaker.state)

    def _settle(self, kind: str, item: OutboxItem, error: str, now: int) -> None:
        """Record a final outcome; the key's next event is released once it is committed."""

        def then() -> None:
            self._finish(item, None)
            if kind == "dead" and self.on_dead is not None:
                self.on_dead(item)

        self.recorder.record(kind, item, error, now, then)

    def _run(self) -> None:
        name = self.cfg.name
        while True:
            taken = self._take()
            if taken is None:
                return
            item, expired = taken
            if item.event_action == "resolve" and not self.store.accepted(name, item.dedup_key):
                # the receiver never accepted a trigger of this key (it went to dead letters):
                # nothing to close; a later replay of that trigger is then stale
                self._m_skipped.inc()
                self._settle("skipped", item, "", self.clock())
                continue
            if expired:
                reason = (
                    f"{item.last_error or 'not attempted'} (retry budget "
                    f"{self.cfg.retry.max_age_ms} ms exhausted, circuit open)"
                )
                log.warning("dead letter for %s %r: %s", name, item.dedup_key, reason)
                self._m_dead.inc()
                self._m_dead_letters.inc()
                self._settle("dead", item, reason, self.clock())
                continue
            try:
                outcome = send_once(self.cfg, self.transport, item.event, item.id, self.clock())
            except Exception as exc:  # noqa: BLE001 - a bug in one send must not kill the thread
                log.exception("delivery to %s failed unexpectedly", name)
                outcome = Outcome(None, f"internal error: {exc!r}")
            now = self.clock()
            with self.cond:
                self.breaker.record(outcome, now)
                note = self._notice(outcome, now)
            if note is not None:
                log.log(logging.INFO if outcome.delivered else logging.WARNING, "%s", note)
            item.attempts += 1
            decision = backoff.decide(
                outcome, item.attempts, now - item.created_ms, self.cfg.retry, self.rng
            )
            if decision.action == "delivered":
                self._m_delivered.inc()
                if item.source_ts_ms:
                    self._m_latency.observe(max(0, now - item.source_ts_ms) / 1000)
                self._settle("delivered", item, "", now)
            elif decision.action == "retry":
                # the same event again: no need to wait for this outcome's commit
                item.next_at_ms = now + decision.delay_ms
                item.last_error = decision.reason
                self.recorder.record("retry", item, decision.reason, now)
                self._m_retry.inc()
                self._m_retries.inc()
                self._finish(item, item.next_at_ms)
            else:
                log.warning("dead letter for %s %r: %s", name, item.dedup_key, decision.reason)
                self._m_dead.inc()
                self._m_dead_letters.inc()
                self._settle("dead", item, decision.reason, now)
