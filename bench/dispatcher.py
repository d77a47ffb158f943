"""Benchmark: alerts/s through the dispatcher to a local receiver, and latency from the record on
``fleet.alerts`` to the HTTP delivery; then the same with a second receiver that never answers,
to show it does not delay the first.

    python -m bench.dispatcher [--bootstrap 127.0.0.1:9092] [--rate 1000] [--duration 20]

Runs the real dispatcher (``python -m alerting run``) as a subprocess, the receiver in another
process (so neither competes for the benchmark's interpreter), and paces a Kafka producer.
Latency = receipt time at the receiver - the producer's send time carried in the alert.
This is a script that prints numbers, not a test.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

from bench.local_http import QuietJsonHandler
from bench.support import cpu_seconds
from simulator.truth import CLASSES  # every alert class the jobs raise

REGIONS = ["NORTHEAST", "MIDWEST", "SOUTH", "WEST"]
SEVERITIES = ["info", "warning", "error", "critical"]


def _serve(port: int) -> None:
    """Receiver process: /live answers 202 at once, /dead never answers."""
    lat: dict[str, list[float]] = {}
    sent_at: dict[str, list[float]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    class H(QuietJsonHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            now = time.time()
            if self.path == "/dead":
                stop.wait(120)
                self.close_connection = True
                return
            try:
                sent = orjson.loads(raw)["payload"]["custom_details"]["bench_sent"]
                with lock:
                    lat.setdefault(self.path, []).append(now - float(sent))
                    sent_at.setdefault(self.path, []).append(float(sent))
            except (KeyError, TypeError, ValueError):
                pass
            self._reply(202, b'{"status":"success"}')

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                if self.path == "/count":
                    body = orjson.dumps({k: len(v) for k, v in lat.items()})
                elif self.path == "/sent":
                    body = orjson.dumps(sent_at)
                else:
                    body = orjson.dumps(lat)
                if self.path == "/reset":
                    lat.clear()
                    sent_at.clear()
            self._reply(200, body)

    server = ThreadingHTTPServer(("127.0.0.1", port), H)
    server.daemon_threads = True
    server.serve_forever()


def _config(port: int, with_dead: bool) -> str:
    dead = (
        f"""
  - name: dead
    type: webhook
    url: http://127.0.0.1:{port}/dead
    secret: bench
    timeout: 2s
    max_in_flight: 4
    circuit_breaker: {{failure_threshold: 5, reset_timeout: 5s}}"""
        if with_dead
        else ""
    )
    routes = (
        """
  routes:
    - receiver: dead
      continue: true
    - receiver: live"""
        if with_dead
        else ""
    )
    return f"""
receivers:
  - name: live
    type: webhook
    url: http://127.0.0.1:{port}/live
    secret: bench
    timeout: 2s
    max_in_flight: 8{dead}
route:
  receiver: live
  group_by: [group, class]
  group_wait: 10ms
  group_interval: 10ms
  repeat_interval: 1h{routes}
"""


def _alert(phase: str, i: int) -> bytes:
    cls = CLASSES[i % len(CLASSES)]
    return orjson.dumps(
        {
            "event_action": "trigger",
            "dedup_key": f"{cls}:{phase}-{i}",
            "payload": {
                "summary": f"bench {cls} {i}",
                "source": "fleetpulse/bench",
                "severity": SEVERITIES[i % 4],
                "timestamp": "2026-11-25T20:10:00.000Z",
                "component": f"truck:T{i % 500}",
                "group": REGIONS[i % 4],
                "class": cls,
                "custom_details": {"truck_id": f"T{i % 500}", "bench_sent": time.time()},
            },
        }
    )


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def _windows(sent: list[float], lat: list[float], width_s: float) -> list[float]:
    """p99 latency (ms) of the alerts sent in each ``width_s`` window of the run."""
    if not sent:
        return []
    t0 = min(sent)
    buckets: dict[int, list[float]] = {}
    for s, x in zip(sent, lat, strict=True):
        buckets.setdefault(int((s - t0) / width_s), []).append(x)
    return [round(_pct(buckets[k], 99) * 1000) for k in sorted(buckets)]


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{" + want + "}") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run_phase(
    bootstrap: str, rport: int, with_dead: bool, rate: int, duration: float, workdir: Path
) -> dict[str, Any]:
    from kafka import KafkaProducer

    from fleetpulse.services.kafka import create_topics
    from fleetpulse.waiting import free_port, wait_until
    from udfs.contract import TopicSpec

    phase = ("dead" if with_dead else "base") + uuid.uuid4().hex[:6]
    topic, dlq = f"fleet.alerts.bench-{phase}", f"fleet.dlq.bench-{phase}"
    create_topics(bootstrap, [TopicSpec(topic, 2, 3_600_000), TopicSpec(dlq, 1, 3_600_000)])
    cfg = workdir / f"{phase}.yaml"
    cfg.write_text(_config(rport, with_dead))
    mport = free_port()
    log = (workdir / f"{phase}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alerting",
            "run",
            "--bootstrap",
            bootstrap,
            "--config",
            str(cfg),
            "--state-dir",
            str(workdir / phase),
            "--group-id",
            phase,
            "--alerts-topic",
            topic,
            "--dlq-topic",
            dlq,
            "--metrics-port",
            str(mport),
            "--log-level",
            "WARNING",
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1)
    recv = f"http://127.0.0.1:{rport}"
    try:
        # Warm-up, left out of the numbers: 2 s at the full rate, so that the consumer group
        # has joined, connections are open, the new topic's partitions are hot in the broker
        # and, with the dead receiver, its circuit has opened (5 timeouts of 2 s).
        warm = max(50, rate * 2)
        t0 = time.monotonic()
        for i in range(warm):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.send(topic, _alert(phase + "w", i))
        producer.flush()
        wait_until(
            lambda: httpx.get(f"{recv}/count").json().get("/live", 0) >= warm,
            60,
            "warm-up deliveries",
        )
        httpx.get(f"{recv}/reset")
        cpu0 = cpu_seconds(proc.pid)
        n = int(rate * duration)
        t0 = time.monotonic()
        for i in range(n):
            target = t0 + i / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.send(topic, _alert(phase, i))
        producer.flush()
        send_s = time.monotonic() - t0
        wait_until(
            lambda: httpx.get(f"{recv}/count").json().get("/live", 0) >= n,
            120,
            f"{n} deliveries to the live receiver",
            interval_s=0.02,
        )
        total_s = time.monotonic() - t0
        cpu_s = cpu_seconds(proc.pid) - cpu0
        lat = httpx.get(f"{recv}/stats").json()["/live"]
        sent = httpx.get(f"{recv}/sent").json()["/live"]
        # a late duplicate can land between the two reads: pair what both lists hold
        kept = min(len(lat), len(sent))
        lat, sent = lat[:kept], sent[:kept]
        metrics = httpx.get(f"http://127.0.0.1:{mport}/metrics").text
    finally:
        producer.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return {
        "phase": "live + never-answering receiver" if with_dead else "live receiver only",
        "loadavg_1m_end": round(os.getloadavg()[0], 1),
        "alerts": n,
        "produce_rate": round(n / send_s),
        "delivered_rate": round(n / total_s),
        "p50_ms": round(_pct(lat, 50) * 1000, 1),
        "p95_ms": round(_pct(lat, 95) * 1000, 1),
        "p99_ms": round(_pct(lat, 99) * 1000, 1),
        "max_ms": round(max(lat) * 1000, 1),
        "dispatcher_cpu_us_per_alert": round(cpu_s / n * 1e6),
        "p99_ms_per_2s": _windows(sent, lat, 2.0),
        "dead_circuit_state": _metric(metrics, "fleetpulse_alerting_circuit_state", receiver="dead")
        if with_dead
        else None,
        "dead_queued": _metric(metrics, "fleetpulse_alerting_outbox", receiver="dead")
        if with_dead
        else None,
    }


@click.command()
@click.option(
    "--bootstrap", default=None, help="Kafka HOST:PORT (default: start a private broker)."
)
@click.option("--rate", default=1000, show_default=True, help="Alerts per second.")
@click.option("--duration", default=20.0, show_default=True, help="Seconds per phase.")
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    help="Alternate the two phases this many times (evens out a noisy machine).",
)
def main(bootstrap: str | None, rate: int, duration: float, rounds: int) -> None:
    from fleetpulse.services.kafka import given_or_private_broker

    with given_or_private_broker(bootstrap) as address:
        run_bench(address, rate, duration, rounds)


def run_bench(bootstrap: str, rate: int, duration: float, rounds: int) -> None:
    from fleetpulse.waiting import free_port, wait_until

    rport = free_port()
    ctx = mp.get_context("spawn")
    server = ctx.Process(target=_serve, args=(rport,), daemon=True)
    server.start()
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{rport}/stats").status_code == 200,
            20,
            "bench receiver",
        )
        with tempfile.TemporaryDirectory(prefix="alerting-bench-") as d:
            results = []
            for _ in range(rounds):
                results.append(run_phase(bootstrap, rport, False, rate, duration, Path(d)))
                results.append(run_phase(bootstrap, rport, True, rate, duration, Path(d)))
    finally:
        server.terminate()
        server.join(5)
    for r in results:
        print(json.dumps(r))
    base, dead = (
        min((r for r in results if (r["dead_queued"] is None) == first), key=lambda r: r["p99_ms"])
        for first in (True, False)
    )
    if rounds > 1:
        print(f"\nbest of {rounds} rounds per phase:")
    print(
        f"\nsustained {base['delivered_rate']} alerts/s delivered (offered {rate}/s for "
        f"{duration:g}s); record->HTTP p99 {base['p99_ms']} ms (p50 {base['p50_ms']} ms)"
    )
    print(
        f"with a never-answering second receiver: {dead['delivered_rate']} alerts/s to the "
        f"live one, p99 {dead['p99_ms']} ms; dead receiver circuit state "
        f"{dead['dead_circuit_state']:g} (1 = open), {dead['dead_queued']:g} queued for it"
    )


if __name__ == "__main__":
    main()
