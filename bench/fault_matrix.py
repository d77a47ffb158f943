"""The dispatcher's HTTP client against misbehaving receivers, beside a healthy one.

    python -m bench.fault_matrix [--client stdlib|httpx] [--timeout 1] [--rate 20] [--seconds 12]

One :class:`alerting.delivery.ReceiverWorker` per fault (as the dispatcher runs them: one per
receiver, a shared outcome recorder and SQLite store), each sent a few alerts, against real
local servers (bench/fault_server.py): ``Retry-After: inf`` on a 202 and on a 429, a 429 with
a huge ``Retry-After``, a 50 MB body, a response trickled one byte every 4 s, a connection
reset, an unresolvable host. Meanwhile a healthy receiver gets ``rate`` alerts/s. Printed: per
fault, the attempts, their longest duration and outcomes, 2xx deliveries per alert; the
healthy receiver's latency (enqueue -> arrival) p50/p99/max. A script, not a test;
tests/alerting/test_alerting_faults.py asserts generous bounds on the same run.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

from alerting.backoff import Outcome
from alerting.config import ReceiverConfig
from alerting.delivery import OutcomeRecorder, ReceiverWorker, Transport, make_transport
from alerting.engine import EngineState, Notification
from alerting.metrics import Metrics
from alerting.records import Alert, decode
from alerting.store import OutboxItem, Store
from bench.fault_server import FaultServer

# fault name -> (server script, url or None for the fault server's /<name>)
FAULTS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "retry_after_inf_on_2xx": (("202-retry-inf",), None),
    "retry_after_inf_on_429": (("429-inf", "202"), None),
    "429_huge_retry_after": (("429-huge", "202"), None),
    "body_50mb": (("200-50mb",), None),
    "byte_every_4s": (("trickle",), None),
    "connection_reset": (("reset", "202"), None),
    "unresolvable_host": ((), "http://fleetpulse-fault-matrix.invalid/alerts"),
}


@dataclass
class Timed:
    """A transport wrapper recording each attempt's duration and outcome."""

    inner: Transport
    attempts: list[tuple[float, Outcome]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Outcome:
        t0 = time.monotonic()
        out = self.inner.post(url, body, headers, timeout_s)
        with self.lock:
            self.attempts.append((time.monotonic() - t0, out))
        return out

    def close(self) -> None:
        self.inner.close()


@dataclass
class FaultResult:
    name: str
    attempts: list[tuple[float, Outcome]]
    deliveries: dict[str, int]  # delivery id -> 2xx answers the server gave it
    alerts: int
    settled: int  # alerts no longer queued (delivered or dead-lettered)
    retry_gaps_s: list[float]  # between attempts of one alert, seen by the server


@dataclass
class MatrixResult:
    faults: dict[str, FaultResult]
    healthy_latencies_s: list[float]
    healthy_sent: int
    timeout_s: float

    def p(self, q: float) -> float:
        xs = sorted(self.healthy_latencies_s)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def _rcfg(name: str, url: str, client: str, timeout_s: float, **kw: Any) -> ReceiverConfig:
    base: dict[str, Any] = {
        "name": name,
        "type": "webhook",
        "url": url,
        "secret": "fault-matrix",
        "timeout": timeout_s,
        "max_in_flight": 2,
        "http_client": client,
        "retry": {"max_attempts": 3, "initial_backoff": "100ms", "max_backoff": "1s"},
        "circuit_breaker": {"failure_threshold": 1000, "reset_timeout": "1s"},
    }
    base.update(kw)
    return ReceiverConfig.model_validate(base)


def _enqueue(store: Store, receiver: str, n: int, tag: str) -> list[OutboxItem]:
    notes = []
    for i in range(n):
        doc = {
            "event_action": "trigger",
            "dedup_key": f"truck_offline:{tag}-{i}",
            "payload": {"summary": f"{tag} {i}", "source": "fault-matrix", "severity": "error"},
        }
        a = decode(orjson.dumps(doc), record_ts_ms=int(time.time() * 1000))
        assert isinstance(a, Alert)
        notes.append(Notification(receiver, a.dedup_key, a.event_action, a.event(), 0))
    return store.commit_batch(EngineState(), notes, int(time.time() * 1000))


def run_matrix(
    client: str = "stdlib",
    timeout_s: float = 1.0,
    rate: float = 20.0,
    seconds: float = 12.0,
    per_fault: int = 3,
    trickle_s: float = 4.0,
    state_dir: Path | None = None,
) -> MatrixResult:
    """Run every fault beside a healthy receiver; ``seconds`` of healthy traffic, then wait
    (at most ``seconds`` more) for the faulty queues to settle."""
    tmp = tempfile.TemporaryDirectory() if state_dir is None else None
    store = Store(state_dir or Path(tmp.name) / "state")  # type: ignore[union-attr]
    server = FaultServer(trickle_s=trickle_s).start()
    healthy_server = FaultServer().start()  # its own accept loop: only the dispatcher is shared
    metrics = Metrics()
    recorder = OutcomeRecorder(store)
    workers: dict[str, tuple[ReceiverWorker, Timed]] = {}
    try:
        for name, (script, url) in FAULTS.items():
            if script:
                server.script(f"/{name}", *script)
            cfg = _rcfg(name, url or server.url(f"/{name}"), client, timeout_s)
            timed = Timed(make_transport(cfg))
            workers[name] = (
                ReceiverWorker(cfg, store, metrics, timed, recorder=recorder).start(),
                timed,
            )
        healthy_cfg = _rcfg("healthy", healthy_server.url("/healthy"), client, timeout_s)
        healthy = ReceiverWorker(healthy_cfg, store, metrics, recorder=recorder).start()
        for name, (w, _) in workers.items():
            w.submit(_enqueue(store, name, per_fault, name))
        sent_at: dict[str, float] = {}
        n = int(rate * seconds)
        t0 = time.monotonic()
        for i in range(n):
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            [item] = _enqueue(store, "healthy", 1, f"healthy{i}")
            sent_at[str(item.id)] = time.time()
            healthy.submit([item])
        end = time.monotonic() + max(seconds, 10 * timeout_s)
        everything = [healthy] + [w for w, _ in workers.values()]
        while time.monotonic() < end and any(w.pending() for w in everything):
            time.sleep(0.05)
        lat = [
            h.at - sent_at[h.delivery_id]
            for h in healthy_server.got("/healthy")
            if h.delivery_id in sent_at
        ]
        faults = {}
        for name, (w, timed) in workers.items():
            with timed.lock:
                attempts = list(timed.attempts)
            gaps: list[float] = []
            by_id: dict[str, list[float]] = {}
            for h in server.got(f"/{name}"):
                by_id.setdefault(h.delivery_id, []).append(h.at)
            for ats in by_id.values():
                gaps += [b - a for a, b in zip(ats, ats[1:], strict=False)]
            faults[name] = FaultResult(
                name,
                attempts,
                server.accepted(f"/{name}"),
                per_fault,
                per_fault - w.pending(),
                gaps,
            )
        return MatrixResult(faults, lat, n, timeout_s)
    finally:
        for w, _ in workers.values():
            w.stop(0.5)
        if "healthy" in locals():
            healthy.stop(0.5)
        recorder.stop()
        server.stop()
        healthy_server.stop()
        store.close()
        if tmp is not None:
            tmp.cleanup()


def report(r: MatrixResult) -> str:
    lines = [
        f"attempt deadline (receiver timeout): {r.timeout_s:g}s",
        f"{'fault':<24} {'attempts':>8} {'longest s':>9} {'median s':>8} {'2xx/alert':>9} "
        f"{'settled':>7}  outcomes",
    ]
    for f in r.faults.values():
        durs = [d for d, _ in f.attempts]
        outcomes = sorted({o.describe()[:50] for _, o in f.attempts})
        per = sorted(set(f.deliveries.values())) or [0]
        lines.append(
            f"{f.name:<24} {len(durs):>8} {max(durs, default=0):>9.3f} "
            f"{statistics.median(durs) if durs else 0:>8.3f} "
            f"{'/'.join(map(str, per)):>9} {f.settled}/{f.alerts:<5}  {'; '.join(outcomes)}"
        )
        if f.retry_gaps_s:
            lines.append(f"{'':<24} gaps between attempts: max {max(f.retry_gaps_s):.2f}s")
    lat = r.healthy_latencies_s
    lines.append(
        f"healthy receiver: {len(lat)}/{r.healthy_sent} delivered, latency p50 "
        f"{r.p(0.5) * 1000:.1f} ms, p99 {r.p(0.99) * 1000:.1f} ms, "
        f"max {max(lat, default=float('nan')) * 1000:.1f} ms"
    )
    return "\n".join(lines)


@click.command()
@click.option("--client", type=click.Choice(["stdlib", "httpx", "both"]), default="both")
@click.option("--timeout", "timeout_s", type=float, default=1.0, help="Per-attempt deadline, s.")
@click.option("--rate", type=float, default=20.0, help="Healthy receiver alerts/s.")
@click.option("--seconds", type=float, default=12.0, help="Duration of healthy traffic.")
def main(client: str, timeout_s: float, rate: float, seconds: float) -> None:
    """Print attempt durations per fault and the healthy receiver's latency."""
    for c in ("stdlib", "httpx") if client == "both" else (client,):
        click.echo(f"== http_client: {c}")
        click.echo(report(run_matrix(c, timeout_s, rate, seconds)))


if __name__ == "__main__":
    main()
