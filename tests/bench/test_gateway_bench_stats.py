"""The gateway benchmark's per-second latency breakdown (pure arithmetic, no services)."""

from __future__ import annotations

import array

from bench.gateway import missing_at_least, p99_by_second, split_cpus


def test_p99_by_second_groups_by_the_second_each_position_was_stamped() -> None:
    start_at = 1_000.0  # seconds
    latencies = array.array("i")
    sent_ms = array.array("q")
    # second 0: 100 fast deliveries and two 900 ms stragglers (2 % of 102, so they are the
    # p99); second 2: 100 at 50 ms
    for i in range(100):
        latencies.append(10 + i % 5)
        sent_ms.append(1_000_000 + i)
    latencies.extend([900, 900])
    sent_ms.extend([1_000_500, 1_000_999])
    for i in range(100):
        latencies.append(50)
        sent_ms.append(1_002_000 + i)
    # seconds with no deliveries are skipped, not reported as zero
    assert p99_by_second(latencies, sent_ms, start_at) == [900, 50]
    # positions stamped before start_at land in the seconds before, in order (-0.5 s is -1)
    latencies.append(7)
    sent_ms.append(999_500)
    assert p99_by_second(latencies, sent_ms, start_at) == [7, 900, 50]


def test_the_gateway_cpu_is_checked_before_anything_starts() -> None:
    errors: list[str] = []
    assert split_cpus(None, {0, 1}, errors.append) is None
    assert split_cpus(1, {0, 1}, errors.append) == {1}
    assert split_cpus(3, {0, 1}, errors.append) is None
    assert split_cpus(0, {0}, errors.append) is None
    assert errors == [
        "--gateway-cpu 3: not one of this process's CPUs [0, 1]",
        "--gateway-cpu needs a second CPU for the load generator",
    ]


def test_deliveries_neither_received_nor_coalesced_are_missing() -> None:
    run = {"deliveries_expected": 1000, "deliveries_received": 990, "coalesced_total": 10.0}
    assert missing_at_least(run) == 0
    assert missing_at_least({**run, "coalesced_total": 4.0}) == 6
    assert missing_at_least({**run, "coalesced_total": 30.0}) == 0  # left frames coalesced too
    assert missing_at_least({"deliveries_expected": 1, "deliveries_received": 1}) is None


def test_the_gateway_micro_benchmark_measures_both_paths() -> None:
    """A small run of ``python -m bench.gateway_micro``: it still drives the router and the
    flush pass as they are (a changed API fails here, not in the next person's A/B)."""
    from click.testing import CliRunner

    from bench.gateway_micro import main

    result = CliRunner().invoke(
        main, ["--entries", "3000", "--clients", "200", "--passes", "5", "--repeat", "1"]
    )
    assert result.exit_code == 0, result.output
    report = dict(line.split() for line in result.output.splitlines()[1:])
    assert set(report) == {
        "routing_us_per_entry",
        "routing_us_per_message",
        "routing_messages_per_entry",
        "flush_us_per_message",
        "flush_us_per_write",
        "flush_messages_per_write",
    }
    assert float(report["routing_messages_per_entry"]) > 0  # positions reached the clients
    assert float(report["flush_messages_per_write"]) >= 1
