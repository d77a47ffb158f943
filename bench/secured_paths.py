"""Benchmark: the tracking job's throughput on the production paths against the plain one, in
one run on one preloaded topic: plaintext Kafka and one redis-server; Kafka through a SASL_SSL
listener with SCRAM-SHA-512 (the same broker, certificates made here); a three-master Redis
Cluster. A last plain run shows how far the machine drifted during the run.

    python -m bench.secured_paths [--pings 300000] [--trucks 30000] [--parallelism 1]

Each row is :func:`bench.runs.run_consumer`'s: the embedded job, bounded, from its first write
to the last truck's last position readable in Redis. Redis CPU counts one node of the cluster
only. A script that prints numbers, not a test.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from bench.context import Context, Sizes
from bench.data import Dataset
from bench.runs import run_consumer, run_timeout_s
from bench.sections.throughput import tracking_argv
from bench.support import log, running_stack
from bench.tls_certs import local_certificates
from fleetpulse.services.kafka import SaslSslListener
from fleetpulse.services.redis_cluster import local_cluster
from fleetpulse.waiting import free_port

USER = "fleetpulse-bench"


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced."""
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


def row(ctx: Context, ds: Dataset, name: str, argv: list[str]) -> dict[str, Any]:
    log(f"secured paths: {name}")
    logs = ctx.workdir / "flink-logs" / name.split(":")[0].replace(" ", "_")
    env = {"FLINK_LOG_DIR": str(logs)}  # each run's JVM log of its own (kept with --keep)
    r = run_consumer(ctx.stack, ds, name, argv, ctx.workdir / "runs", run_timeout_s(ds), env=env)
    keep = ("name", "status", "rate", "seconds", "cpu_us_per_ping", "redis_cpu_us_per_ping")
    return {k: r[k] for k in keep if k in r} | ({"reason": r["reason"]} if "reason" in r else {})


@click.command()
@click.option("--pings", default=300_000, show_default=True)
@click.option("--trucks", default=30_000, show_default=True)
@click.option("--parallelism", default=1, show_default=True)
@click.option("--keep", is_flag=True, help="Keep the services' and runs' files (logs).")
def main(pings: int, trucks: int, parallelism: int, keep: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fleetpulse-secured-"))
    try:
        rows = measure(tmp, pings, trucks, parallelism, keep)
    finally:
        if keep:
            log(f"files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    for r in rows:
        print(json.dumps(r))
    base = rows[0].get("rate")
    print(f"\n{pings:,} pings of {trucks:,} trucks, parallelism {parallelism}:")
    for r in rows:
        rate = r.get("rate")
        ratio = f" ({rate / base:.2f}x plain)" if rate and base else ""
        print(f"  {r['name']}: {rate or r.get('reason', 'failed')} pings/s{ratio}")


def measure(
    work: Path, pings: int, trucks: int, parallelism: int, keep: bool = False
) -> list[dict[str, Any]]:
    certs = local_certificates(work / "tls")
    password = secrets.token_urlsafe(12)
    listener = SaslSslListener(
        free_port(), certs.keystore, certs.keystore_password, {USER: password}
    )
    props = work / "client.properties"
    props.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        f"sasl.username={USER}\nsasl.password={password}\n"
        f"ssl.truststore.location={certs.ca_pem}\n"
    )
    props.chmod(0o600)
    rows = []
    with running_stack(keep=keep, secure=listener) as stack:
        sizes = dataclasses.replace(Sizes(), pings=pings, trucks=trucks)
        ctx = Context(stack, stack.root, sizes, quix_python=None)
        ds = ctx.dataset(trucks)
        plain = tracking_argv(ctx, ds, parallelism)
        rows.append(row(ctx, ds, "plain: PLAINTEXT Kafka, one redis-server", plain))
        # a fresh argv: each run reads the topic from the start under a group of its own
        fresh = tracking_argv(ctx, ds, parallelism)
        secured = with_flag(fresh, "--bootstrap", stack.kafka.secure_bootstrap)
        secured += ["--kafka-properties-file", str(props)]
        rows.append(row(ctx, ds, "SASL_SSL + SCRAM-SHA-512 Kafka, one redis-server", secured))
        with local_cluster(stack.root / "redis-cluster") as cluster:
            on_cluster = dataclasses.replace(
                stack,
                redis_server=cluster.nodes[0],
                procs={**stack.procs, "redis": cluster.procs[0]},
            )
            cctx = dataclasses.replace(ctx, stack=on_cluster)
            argv = with_flag(tracking_argv(cctx, ds, parallelism), "--redis-url", cluster.url)
            rows.append(row(cctx, ds, "PLAINTEXT Kafka, Redis Cluster of 3 masters", argv))
        rows.append(row(ctx, ds, "plain again (drift)", tracking_argv(ctx, ds, parallelism)))
    return rows


if __name__ == "__main__":
    main()
