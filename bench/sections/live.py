"""Measures 3 (freshness), 4 (alert latency) and 6 (memory) in one live run of the system.

Everything runs as it would in production, on the private Kafka and Redis: the tracking job
(unbounded), the delay job (``--no-at-risk``), the alert dispatcher with one webhook receiver,
and the websocket gateway. A paced producer sends pings whose ``ts`` is the wall clock at
production; a probe process reads ``stream:positions`` (readable in Redis) and holds
websocket clients (arrival at a client).

Phases: the seed's load (10,000 pings/min from 5,000 trucks, one ping each per 30 s), then
10,000 pings/s from 100,000 trucks (one ping each per 10 s). At the start of the second phase,
``doomed`` trucks send one ping backdated so that their ``truck_offline`` deadline (last ping +
600 s) falls at a known wall-clock moment inside the phase, and as many shipments are picked
up with ``promised_by`` at such moments (``shipment_late``, from the delay job). The webhook
receiver records each alert's arrival.

Alert latency is reported from two moments: the wall clock passing the deadline ``D``, and the
watermark passing it, which (pings carrying the wall clock as ``ts``, and the jobs' bounded
out-of-orderness of 10 s) is ``D + 10 s``: the earliest moment event time can say the deadline
has passed.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import urllib.request
from typing import Any

import orjson

from bench.context import Context
from bench.live_procs import paced_producer, probe, receiver
from bench.report import NOT_MEASURED, latency_summary
from bench.runs import unique_group
from bench.support import Bar, BenchError, Child, MemorySampler, python_argv, start_child, wait_for
from fleetpulse.waiting import free_port

OUT_OF_ORDERNESS_MS = 10_000
OFFLINE_AFTER_MS = 600_000
WS_CLIENTS = 8

DISPATCH_CONFIG = """
receivers:
  - name: bench-webhook
    type: webhook
    url: http://127.0.0.1:{port}/alerts
    secret: bench-secret
    timeout: 5s
    max_in_flight: 8
route:
  receiver: bench-webhook
  group_by: [group, class]
  group_wait: 10ms
  group_interval: 10ms
  repeat_interval: 4h
"""


def _warm_pickup(scan_id: str, shipment: str) -> bytes:
    """A pick-up scan now, promised in a day: the delay job counts it, and it moves the scans'
    watermark on."""
    now = int(time.time() * 1000)
    return orjson.dumps(
        {
            "scan_id": scan_id,
            "shipment_id": shipment,
            "type": "PICKED_UP",
            "ts": now,
            "hub_id": "HUB-BENCH",
            "lat": 41.88,
            "lng": -87.63,
            "promised_by": now + 86_400_000,
            "dest_lat": 42.0,
            "dest_lng": -87.9,
        }
    )


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return orjson.loads(resp.read())


def run(ctx: Context) -> dict[str, dict[str, Any]]:
    sizes = ctx.sizes
    stack = ctx.stack
    t = stack.topics
    work = ctx.workdir / "live"
    work.mkdir(parents=True, exist_ok=True)
    stack.flush_redis()
    spawn = mp.get_context("spawn")
    children: list[Child] = []
    helpers: list[Any] = []
    sampler = MemorySampler(0.5)
    sampler.watch("Kafka broker (JVM)", stack.procs["kafka"].pid)
    sampler.watch("Redis", stack.procs["redis"].pid)
    parallelism = int(ctx.shared.get("best_parallelism", 1))
    common = [
        "--bootstrap",
        stack.bootstrap,
        "--redis-url",
        stack.redis_url,
        "--alerts-topic",
        t.alerts,
        "--dlq-topic",
        t.dlq,
    ]
    rport, gport = free_port(), free_port()
    notes: list[str] = []
    try:
        with sampler:
            tgroup, dgroup = unique_group("bench-live-tracking"), unique_group("bench-live-delay")
            tracking = start_child(
                "tracking_job",
                python_argv(
                    "flink_jobs.tracking.job",
                    *common,
                    "--gps-topic",
                    t.gps,
                    "--geofence-topic",
                    t.geofence_events,
                    "--group-id",
                    tgroup,
                    "--checkpoint-dir",
                    str(work / "checkpoints" / tgroup),
                    "--parallelism",
                    str(parallelism),
                ),
                work,
            )
            children.append(tracking)
            sampler.watch(f"tracking job (Python + JVM, p={parallelism})", tracking.pid)
            delay = start_child(
                "delay_job",
                python_argv(
                    "flink_jobs.delay.job",
                    *common,
                    "--scans-topic",
                    t.scans,
                    "--gps-topic",
                    t.gps,
                    "--group-id",
                    dgroup,
                    "--checkpoint-dir",
                    str(work / "checkpoints" / dgroup),
                    "--no-at-risk",
                ),
                work,
            )
            children.append(delay)
            sampler.watch("delay job (Python + JVM)", delay.pid)
            rec = spawn.Process(target=receiver, args=(rport,), daemon=True)
            rec.start()
            helpers.append(rec)
            cfg = work / "dispatcher.yaml"
            cfg.write_text(DISPATCH_CONFIG.format(port=rport))
            dispatcher = start_child(
                "dispatcher",
                python_argv(
                    "alerting",
                    "run",
                    "--bootstrap",
                    stack.bootstrap,
                    "--config",
                    str(cfg),
                    "--state-dir",
                    str(work / "dispatcher-state"),
                    "--group-id",
                    unique_group("bench-alerting"),
                    "--alerts-topic",
                    t.alerts,
                    "--dlq-topic",
                    t.dlq,
                    "--log-level",
                    "WARNING",
                ),
                work,
            )
            children.append(dispatcher)
            sampler.watch("alert dispatcher", dispatcher.pid)
            gateway = start_child(
                "gateway",
                python_argv(
                    "ws_gateway",
                    "run",
                    "--redis-url",
                    stack.redis_url,
                    "--port",
                    str(gport),
                    "--no-auth",
                    "--log-level",
                    "WARNING",
                    "--max-lag-s",
                    "10",
                ),
                work,
            )
            children.append(gateway)
            sampler.watch("websocket gateway", gateway.pid)
            delay_ok = _warm_up(ctx, children, rport, gport, notes)
            result = _measure(ctx, spawn, helpers, gport, rport, delay_ok, notes)
    finally:
        for h in helpers:
            if h.is_alive():
                h.terminate()
                h.join(5)
        for c in reversed(children):
            c.stop()
    r = stack.redis()
    redis_peak = round(int(r.info("memory")["used_memory_peak"]) / 2**20, 1)
    trucks_seen = int(r.zcard("trucks:seen"))
    r.close()
    procs = [
        {"name": name, "peak_rss_mib": round(kib / 1024, 1), "where": "live run"}
        for name, kib in sampler.peak_kib.items()
    ]
    best = ctx.shared.get("best_throughput_row")
    if best:
        procs.append(
            {
                "name": f"tracking job, {best['name']} (backfill of "
                f"{best['pings']:,} pings, {best['trucks']:,} trucks)",
                "peak_rss_mib": best.get("tree_peak_rss_mib"),
                "where": "throughput run (not added to the total)",
            }
        )
    memory = {
        "status": "ok",
        "processes": procs,
        "system_peak_mib": round(sampler.total_peak_kib / 1024, 1),
        "redis_used_memory_peak_mib": redis_peak,
        "trucks_written": trucks_seen,
        "method": f"Resident set size of each process tree (a job's Python process and its "
        f"JVM together) sampled from /proc every 0.5 s during the live run "
        f"({sizes.trucks:,} trucks in phase 2, {sizes.seed_trucks:,} in phase 1); "
        "the whole-system figure is the peak of their sum at one moment. The load "
        "generator, probe and webhook receiver are not counted. Trucks whose "
        f"position the job had written by the end: {trucks_seen:,}.",
    }
    result["memory"] = memory
    for sec in ("freshness", "alerts"):
        result[sec].setdefault("notes", []).extend(notes)
    return result


def _warm_up(ctx: Context, children: list[Child], rport: int, gport: int, notes: list[str]) -> bool:
    """Wait until pings reach Redis, an alert reaches the webhook, the gateway answers;
    returns whether the delay job is up (a pick-up counted in Redis)."""
    from confluent_kafka import Producer

    stack = ctx.stack
    t = stack.topics
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 2})
    r = stack.redis()
    bar = Bar(4, "live: starting jobs, dispatcher, gateway", "step")
    try:

        def alive() -> None:
            for c in children:
                if not c.alive():
                    raise BenchError(f"{c.name} exited during start-up:\n{c.log_tail()}")

        def tick() -> bool:
            alive()
            now = int(time.time() * 1000)
            producer.produce(
                t.gps,
                orjson.dumps(
                    {
                        "truck_id": "W0000001",
                        "ts": now,
                        "lat": 41.0,
                        "lng": -90.0,
                        "speed_kph": 70.0,
                    }
                ),
                b"W0000001",
            )
            producer.flush(5)
            return bool(r.exists("truck:W0000001"))

        wait_for(tick, 300, "the tracking job to write its first position", interval_s=1.0)
        bar.update_to(1)
        wait_for(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{gport}/healthz", timeout=2).status == 200
            ),
            60,
            "the gateway",
        )
        bar.update_to(2)
        # one offline alert end to end: the dispatcher has joined and delivers
        now = int(time.time() * 1000)
        producer.produce(
            t.gps,
            orjson.dumps(
                {
                    "truck_id": "W0000002",
                    "ts": now - OFFLINE_AFTER_MS - 20_000,
                    "lat": 41.0,
                    "lng": -91.0,
                }
            ),
            b"W0000002",
        )

        def alert_seen() -> bool:
            tick()
            return any(
                a[1] == "truck_offline:W0000002"
                for a in _get_json(f"http://127.0.0.1:{rport}/alerts")
            )

        wait_for(alert_seen, 180, "a warm-up truck_offline alert at the webhook", interval_s=1.0)
        bar.update_to(3)
        # the delay job: one pick-up, counted in region:* by the job
        delay = next(c for c in children if c.name == "delay_job")
        producer.produce(t.scans, _warm_pickup("SC-WARM-1", "WS0000001"), b"WS0000001")
        producer.flush(5)

        filler = iter(range(1, 10**6))

        def delay_up() -> bool:
            if not delay.alive():
                raise BenchError(f"delay job exited:\n{delay.log_tail()}")
            tick()  # and a later scan, so the scans' watermark passes the pick-up
            sid = f"WS{next(filler) + 1:07d}"
            producer.produce(t.scans, _warm_pickup(f"SC-WARM-{sid}", sid), sid.encode())
            producer.flush(5)
            return any(int(r.hget(k, "total_shipments") or 0) > 0 for k in r.scan_iter("region:*"))

        try:
            wait_for(delay_up, 180, "the delay job to count a pick-up", interval_s=1.0)
            delay_ok = True
        except BenchError as exc:
            notes.append(f"delay job not measured: {str(exc)[:600]}")
            delay_ok = False
        bar.update_to(4)
        return delay_ok
    finally:
        bar.close()
        r.close()


def _deadlines(duration_s: float, k: int, prefix: str) -> list[tuple[str, int]]:
    """``k`` subjects with deadlines spread over a phase (offsets from its start), leaving
    the out-of-orderness and some slack before its end."""
    first_ms = 3_000
    last_ms = max(first_ms, int((duration_s - OUT_OF_ORDERNESS_MS / 1000 - 5.0) * 1000))
    return [
        (f"{prefix}{i:06d}", first_ms + (last_ms - first_ms) * i // max(1, k - 1)) for i in range(k)
    ]


def _measure(
    ctx: Context,
    spawn: Any,
    helpers: list[Any],
    gport: int,
    rport: int,
    delay_ok: bool,
    notes: list[str],
) -> dict[str, dict[str, Any]]:
    sizes = ctx.sizes
    stack = ctx.stack
    t = stack.topics
    stop, ready = spawn.Event(), spawn.Event()
    probe_q, prod_q = spawn.Queue(), spawn.Queue()
    pr = spawn.Process(
        target=probe,
        args=(stack.redis_url, f"ws://127.0.0.1:{gport}/ws", WS_CLIENTS, stop, ready, probe_q),
        daemon=True,
    )
    pr.start()
    helpers.append(pr)
    if not ready.wait(60):
        raise BenchError("the probe did not connect")
    time.sleep(1.0)
    seed_s, high_s = sizes.seed_phase_s, sizes.high_phase_s
    k = sizes.doomed
    phases: list[dict[str, Any]] = [
        {
            "label": f"{sizes.seed_rate_per_min:,} pings/min",
            "rate": sizes.seed_rate_per_min / 60,
            "trucks": sizes.seed_trucks,
            "prefix": "A",
            "duration_s": seed_s,
            "scan_rate": 5,
            "doomed": _deadlines(seed_s, k, "DA"),
            "deadlines": _deadlines(seed_s, k, "BA") if delay_ok else [],
        },
        {
            "label": f"{sizes.high_rate_per_s:,} pings/s",
            "rate": sizes.high_rate_per_s,
            "trucks": sizes.trucks,
            "prefix": "T",
            "duration_s": high_s,
            "scan_rate": 50,
            "doomed": _deadlines(high_s, k, "DB"),
            "deadlines": _deadlines(high_s, k, "BB") if delay_ok else [],
        },
    ]
    for ph in phases:
        ph["offline_after_ms"] = OFFLINE_AFTER_MS
    prod = spawn.Process(
        target=paced_producer, args=(stack.bootstrap, t.gps, t.scans, phases, prod_q), daemon=True
    )
    prod.start()
    helpers.append(prod)
    settle_s = 30.0
    total = seed_s + high_s + settle_s
    bar = Bar(total, "live: seed load, then 10,000/s", "s")
    t0 = time.monotonic()
    while prod.is_alive() and time.monotonic() - t0 < total + 120:
        bar.update_to(time.monotonic() - t0)
        time.sleep(0.5)
    summaries = prod_q.get(timeout=60)
    # let the last alerts and positions arrive
    expected = set()
    for ph in phases:
        expected |= {f"truck_offline:{tid}" for tid, _ in ph["doomed"]}
        expected |= {f"shipment_late:{sid}" for sid, _ in ph["deadlines"]}
    settle_until = time.monotonic() + settle_s
    while time.monotonic() < settle_until:
        bar.update_to(time.monotonic() - t0)
        got = {a[1] for a in _get_json(f"http://127.0.0.1:{rport}/alerts") if a[2] == "trigger"}
        if expected <= got:
            break
        time.sleep(0.5)
    stop.set()
    probe_out = probe_q.get(timeout=60)
    bar.close()
    alerts = _get_json(f"http://127.0.0.1:{rport}/alerts")
    samples = probe_out["samples"]
    loads = []
    for summ, ph in zip(summaries, phases, strict=True):
        # pings sent in the phase, less its first 2 s (the previous phase's tail, warm-up)
        lo, hi = (summ["start_wall"] + 2) * 1000, summ["end_wall"] * 1000
        expected_n = summ["sent_after_2s"]
        row: dict[str, Any] = {
            "label": ph["label"],
            "rate_per_s": round(float(ph["rate"]), 1),
            "achieved_rate_per_s": summ["rate"],
            "pings_sent": summ["sent"],
            "seconds": round(summ["end_wall"] - summ["start_wall"], 1),
        }
        for where in ("redis", "websocket"):
            lat = _sent_between(samples[where], lo, hi)
            summary = latency_summary(lat)
            summary["coverage"] = round(len(lat) / expected_n, 3) if expected_n else None
            row[where] = summary
        loads.append(row)
    freshness = {
        "status": "ok",
        "loads": loads,
        "ws_clients": WS_CLIENTS,
        "probe_errors": probe_out["errors"],
        "method": "Latency = the moment a probe sees the position - the ping's `ts` (the wall "
        "clock when the producer sent it). 'redis': the probe's XREAD of "
        "`stream:positions`, which the job's script appends in the same call that "
        f"updates `truck:{{id}}`. 'websocket': {WS_CLIENTS} clients on the gateway, "
        "each subscribed to one longitude stripe of the US (together every "
        "position). Pings sent in the first 2 s of a phase are left out; positions "
        f"are awaited until {settle_s:.0f} s after the last phase. 'coverage' = "
        "positions seen / pings sent: below 1 the system did not keep up and the "
        "unseen ones are slower than every percentile shown. Tracking job at "
        f"parallelism {ctx.shared.get('best_parallelism', 1)}, Redis flush tick "
        "200 ms (the job's default).",
    }
    sources = []
    for summ, ph in zip(summaries, phases, strict=True):
        given = summ["deadlines"]
        sources.append(
            _alert_source(
                "truck_offline",
                "tracking job",
                ph["label"],
                [(x, given[x]) for x, _ in ph["doomed"]],
                alerts,
            )
        )
        if delay_ok:
            sources.append(
                _alert_source(
                    "shipment_late",
                    "delay job",
                    ph["label"],
                    [(x, given[x]) for x, _ in ph["deadlines"]],
                    alerts,
                )
            )
    if not delay_ok:
        sources.append(
            {
                "alert_class": "shipment_late",
                "status": NOT_MEASURED,
                "reason": next(
                    (n for n in notes if n.startswith("delay job")), "the delay job did not start"
                ),
            }
        )
    alerts_sec = {
        "status": "ok",
        "sources": sources,
        "method": "In each phase, doomed trucks (one backdated ping each: `truck_offline` due "
        "600 s of event time later) and shipments (a pick-up with `promised_by`) "
        "get deadlines D spread over the phase. Latency = arrival at the webhook "
        "receiver - D ('wall clock') or - (D + 10 s) ('watermark': the watermark is "
        "max ts - 10 s of bounded out-of-orderness, and pings carry the wall clock, "
        "so it passes D at D + 10 s). Dispatcher: one webhook receiver, group_wait "
        "and group_interval 10 ms (the shipped default config waits 1 s / 10 s per "
        f"group by design). Alerts are awaited until {settle_s:.0f} s after the "
        "last phase.",
    }
    return {"freshness": freshness, "alerts": alerts_sec}


def _sent_between(samples: list[list[int]], lo_ms: float, hi_ms: float) -> list[float]:
    """Latencies of the positions whose ping was sent in [lo, hi) (sent = seen - latency)."""
    return [float(lat) for at, lat in samples if lo_ms <= at - lat < hi_ms]


def _alert_source(
    cls: str, job: str, phase: str, items: list[tuple[str, int]], alerts: list[list[Any]]
) -> dict[str, Any]:
    """Latencies of the first ``trigger`` of ``cls`` for each (subject, deadline ms)."""
    first: dict[str, int] = {}
    for at, key, action, _cls in alerts:
        if action == "trigger" and key.startswith(cls + ":"):
            first.setdefault(key.split(":", 1)[1], int(at))
    from_deadline, from_wm = [], []
    for subject, deadline in items:
        if subject in first:
            from_deadline.append(float(first[subject] - deadline))
            from_wm.append(float(first[subject] - deadline - OUT_OF_ORDERNESS_MS))
    return {
        "alert_class": cls,
        "job": job,
        "phase": phase,
        "status": "ok",
        "expected": len(items),
        "from_deadline": latency_summary(from_deadline),
        "from_watermark": latency_summary(from_wm),
        "note": ""
        if len(from_wm) == len(items)
        else f"{len(items) - len(from_wm)} of {len(items)} alerts had not arrived by the end",
    }
