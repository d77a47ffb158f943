"""Producer benchmark: records/s from one process to a broker.

    python -m bench.simulator_producer [--bootstrap 127.0.0.1:9092] [--records 300000]

Without ``--bootstrap`` it starts a private broker (the project's launcher) with the contract
topics, and stops it afterwards.

Records are generated first (the simulator's own rate is printed separately), then sent with
the same :class:`~simulator.sinks.KafkaSink` the CLI uses and timed until every record is
acknowledged (flush).
"""

from __future__ import annotations

import time
import uuid

import click

from fleetpulse.services.kafka import given_or_private_broker
from simulator.config import SimConfig
from simulator.fleet import FleetSimulator, Record
from simulator.sinks import KafkaSink
from udfs.contract import TopicNames, contract_topics
from udfs.encoding import kept


def generate(n: int, trucks: int = 500, seed: int = 7) -> tuple[list[Record], float]:
    """At least ``n`` records of a simulated run, and the generation rate.

    The records are kept as exact-size copies: each orjson-encoded value would otherwise pin a
    ~4 KiB heap block (300,000 records took 1.29 GB of RSS instead of ~0.1 GB; see
    :func:`udfs.encoding.kept`). The copy is counted in the generation rate.
    """
    sim = FleetSimulator(SimConfig(trucks=trucks, seed=seed))
    out: list[Record] = []
    t0 = time.perf_counter()
    for rec in sim.run(14 * 24 * 3600):
        out.append(rec._replace(value=kept(rec.value)))
        if len(out) >= n:
            break
    return out, len(out) / (time.perf_counter() - t0)


def produce(
    bootstrap: str,
    records: list[Record],
    topics: TopicNames,
    linger_ms: int,
    batch_kb: int,
    compression: str | None,
    client: str = "auto",
) -> float:
    """Send all records and wait for the acknowledgements; records/s."""
    sink = KafkaSink(
        bootstrap,
        topics,
        linger_ms=linger_ms,
        batch_bytes=batch_kb * 1024,
        compression=compression,
        client=client,
    )
    sink.send(records[0])
    sink.flush()  # metadata and connections are not part of the rate
    t0 = time.perf_counter()
    for rec in records:
        sink.send(rec)
    sink.flush()
    rate = len(records) / (time.perf_counter() - t0)
    sink.close()
    return rate


@click.command()
@click.option(
    "--bootstrap", default=None, help="HOST:PORT of the broker (default: start a private one)"
)
@click.option("--records", default=300_000, show_default=True)
@click.option("--linger-ms", default=20, show_default=True)
@click.option("--batch-kb", default=1024, show_default=True)
@click.option("--compression", default="lz4", show_default=True, help="none, gzip, lz4, zstd")
@click.option(
    "--client",
    type=click.Choice(["auto", "confluent", "kafka-python"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--topic-suffix",
    default=None,
    help="write to fleet.gps.<suffix>/fleet.scans.<suffix> (must exist); "
    "default: the contract topics",
)
def main(
    bootstrap: str | None,
    records: int,
    linger_ms: int,
    batch_kb: int,
    compression: str | None,
    client: str,
    topic_suffix: str | None,
) -> None:
    """Print the producer's records/s (target: 50,000 from one process)."""
    recs, gen_rate = generate(records)
    size = sum(len(r.value) for r in recs) / len(recs)
    topics = (
        TopicNames(gps=f"fleet.gps.{topic_suffix}", scans=f"fleet.scans.{topic_suffix}")
        if topic_suffix
        else TopicNames()
    )
    with given_or_private_broker(bootstrap, contract_topics(topics)) as address:
        rate = produce(address, recs, topics, linger_ms, batch_kb, compression, client)
    click.echo(f"generated {len(recs)} records at {gen_rate:,.0f}/s (avg {size:.0f} bytes)")
    click.echo(
        f"produced {len(recs)} records at {rate:,.0f} records/s "
        f"(client {client}, linger {linger_ms} ms, batch {batch_kb} KiB, "
        f"compression {compression}, run {uuid.uuid4().hex[:6]})"
    )


if __name__ == "__main__":
    main()
