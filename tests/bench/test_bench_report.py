"""Pure helpers of `fleetpulse bench`: percentiles, ratios, `time -v` parsing, the report and
the benchmark's input generator. No services, no timing."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from bench import report
from bench.context import Sizes
from bench.data import generate, partition_of, truck_id

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_closest_ranks() -> None:
    xs = [float(x) for x in range(1, 101)]  # 1..100
    assert report.percentile(xs, 50) == pytest.approx(50.5)
    assert report.percentile(xs, 99) == pytest.approx(99.01)
    assert report.percentile(xs, 0) == 1.0
    assert report.percentile(xs, 100) == 100.0
    assert report.percentile([7.0], 99) == 7.0
    assert report.percentile(list(reversed(xs)), 50) == pytest.approx(50.5)
    assert math.isnan(report.percentile([], 50))
    with pytest.raises(ValueError):
        report.percentile(xs, 101)


def test_latency_summary_and_empty_summary() -> None:
    s = report.latency_summary([10.0, 20.0, 30.0, 40.0])
    assert s["n"] == 4 and s["max_ms"] == 40.0 and s["p50_ms"] == 25.0
    assert report.latency_summary([]) == {
        "n": 0,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }


def test_ratio_handles_missing_and_zero() -> None:
    assert report.ratio(30_000, 20_000) == 1.5
    assert report.ratio(1, 3) == 0.33
    assert report.ratio(None, 5) is None
    assert report.ratio(5, 0) is None
    assert report.ratio(float("nan"), 5) is None


def test_parse_time_v_reads_rss_cpu_and_wall_clock() -> None:
    text = """\tCommand being timed: "python -m x"
\tUser time (seconds): 12.50
\tSystem time (seconds): 1.25
\tPercent of CPU this job got: 99%
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.50
\tMaximum resident set size (kbytes): 229120
\tExit status: 0
"""
    got = report.parse_time_v(text)
    assert got == {"user_s": 12.5, "system_s": 1.25, "wall_s": 3723.5, "max_rss_kib": 229120}
    assert report.parse_time_v("Elapsed (wall clock) time (h:mm:ss or m:ss): 0:07.25") == {
        "wall_s": 7.25
    }


def test_p99_is_a_lower_bound_when_not_everything_arrived() -> None:
    complete = {"n": 100, "p99_ms": 800.0, "max_ms": 900.0, "coverage": 1.0}
    partial = {"n": 20, "p99_ms": 800.0, "max_ms": 45_500.0, "coverage": 0.2}
    assert report.fmt_p99(complete) == "800 ms"
    assert report.verdict_p99(complete, 1000) == "met"
    assert report.fmt_p99(partial) == "> 45.50 s (only 20% arrived)"
    assert report.verdict_p99(partial, 1000) == "**missed**"
    assert report.fmt_p99({"n": 0, "max_ms": None, "coverage": 0.0}) == "none arrived"


def sample_results() -> dict:  # type: ignore[type-arg]
    return {
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "mem_gib": 23.5,
            "os": "Linux",
            "python": "3.11.7",
            "java": "Java 17",
            "flink": "2.2.1",
            "kafka": "4.1.1",
            "redis": "7.0.15",
            "quixstreams": None,
            "loadavg": "0.10 0.20 0.30",
        },
        "run": {
            "command": "fleetpulse bench --quick",
            "started_utc": "2026-11-25 23:20",
            "duration_s": 600,
            "notes": ["sizes reduced"],
        },
        "sections": {
            "throughput": {
                "status": "ok",
                "pings": 1000,
                "trucks": 100,
                "topic": "t",
                "partitions": 4,
                "bytes_per_ping": 143,
                "runs": [
                    {"name": "fleetpulse p=1", "status": "ok", "rate": 2000, "seconds": 0.5},
                    {
                        "name": "fleetpulse p=1, pinned to CPU 0",
                        "status": "ok",
                        "rate": 3000,
                        "seconds": 0.4,
                    },
                    {"name": "plain Python", "status": "ok", "rate": 8000},
                    {"name": "Quix Streams", "status": "not measured", "reason": "not installed"},
                ],
                "best": {"name": "fleetpulse p=1", "rate": 2000},
                "ratios": {"plain Python": 0.25},
                "pin_ratios": {"fleetpulse p=1, pinned to CPU 0": 1.5},
            },
            "freshness": {
                "status": "ok",
                "loads": [
                    {
                        "label": "10,000 pings/s",
                        "rate_per_s": 10_000,
                        "achieved_rate_per_s": 9990,
                        "redis": {
                            "n": 10,
                            "p50_ms": 100.0,
                            "p95_ms": 200.0,
                            "p99_ms": 300.0,
                            "max_ms": 310.0,
                            "coverage": 1.0,
                        },
                        "websocket": {
                            "n": 2,
                            "p50_ms": 100.0,
                            "p95_ms": 200.0,
                            "p99_ms": 300.0,
                            "max_ms": 40_000.0,
                            "coverage": 0.2,
                        },
                    }
                ],
            },
            "alerts": {
                "status": "ok",
                "sources": [
                    {
                        "alert_class": "truck_offline",
                        "phase": "10,000 pings/min",
                        "status": "ok",
                        "expected": 2,
                        "from_watermark": {
                            "n": 2,
                            "p50_ms": 500.0,
                            "p95_ms": 600.0,
                            "p99_ms": 650.0,
                            "max_ms": 650.0,
                        },
                        "from_deadline": {
                            "n": 2,
                            "p50_ms": 10_500.0,
                            "p95_ms": 10_600.0,
                            "p99_ms": 10_650.0,
                            "max_ms": 10_650.0,
                        },
                    },
                    {
                        "alert_class": "shipment_late",
                        "status": "not measured",
                        "reason": "the delay job did not start",
                    },
                ],
            },
            "memory": {"status": "not measured", "reason": "live run failed"},
        },
    }


def test_summary_rows_give_verdicts_and_reasons() -> None:
    rows = {r[0]: r for r in report.summary_rows(sample_results())}
    assert rows["1. tracking job throughput"][1] == "2,000 pings/s (fleetpulse p=1)"
    assert rows["1. tracking job throughput"][3] == "**missed**"
    assert rows["2. ratio to plain Python"][1:] == ["0.25x", "≥ 1.0x", "**missed**"]
    assert rows["3. freshness p99, 10,000 pings/s, to redis"][3] == "met"
    assert rows["3. freshness p99, 10,000 pings/s, to websocket"][3] == "**missed**"
    assert rows["4. alert p99 from watermark (truck_offline, 10,000 pings/min)"][1:] == [
        "650 ms",
        "< 2 s",
        "met",
    ]
    assert rows["4. alert latency (shipment_late)"][3] == "the delay job did not start"
    assert rows["6. memory"][1:] == ["not measured", "< 4 GiB", "live run failed"]
    assert rows["5. gateway fan-out"][3] == "not run"


def test_markdown_has_machine_summary_and_not_measured_sections() -> None:
    md = report.markdown(sample_results())
    assert md.startswith("# fleetpulse benchmarks\n")
    assert "Test CPU, 2 cores" in md
    assert "| measure | result | target | verdict |" in md
    assert "![throughput and latency](bench-chart.png)" in md
    assert "## 6. Memory\n\nNot measured: live run failed" in md
    assert "Pinned / unpinned (the run before it): fleetpulse p=1, pinned to CPU 0 1.5x" in md
    assert "| Quix Streams | not measured |" in md
    assert "- sizes reduced" in md
    assert "chart" not in report.markdown(sample_results(), chart_name=None).split("## 1")[0]


def test_chart_series_marks_incomplete_latencies(tmp_path: Path) -> None:
    bars, lat = report.chart_series(sample_results())
    assert bars == [
        ("fleetpulse p=1", 2000.0),
        ("fleetpulse p=1, pinned to CPU 0", 3000.0),
        ("plain Python", 8000.0),
    ]
    assert [(row[0].split("\n")[0], row[4]) for row in lat] == [
        ("ping->redis", True),
        ("ping->ws", False),
        ("alert offline", True),
    ]
    reason = report.write_chart(sample_results(), tmp_path / "c.png")
    if reason is None:
        assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_json_round_trips(tmp_path: Path) -> None:
    report.write_json(sample_results(), tmp_path / "r.json")
    assert orjson.loads((tmp_path / "r.json").read_bytes()) == sample_results()


def test_generated_input_is_valid_ordered_and_ends_before_now() -> None:
    from udfs.models import Ping
    from udfs.ping_validation import parse_ping

    now = 1_764_100_000_000
    rows = list(generate(250, 100, 4, now_ms=now))
    assert len(rows) == 250
    ts = [r[4] for r in rows]
    assert ts == sorted(ts) and ts[-1] < now
    last: dict[str, int] = {}
    for part, key, value, tid, t in rows:
        assert part == partition_of(tid, 4) and key == tid.encode()
        ping = parse_ping(value, now)
        assert isinstance(ping, Ping) and ping.truck_id == tid and ping.ts == t
        last[tid] = t
    assert len(last) == 100 and truck_id(7) == "T0000007"
    assert rows == list(generate(250, 100, 4, now_ms=now))  # deterministic


def test_quick_sizes_are_small() -> None:
    q = Sizes.quick()
    assert (q.pings, q.trucks) == (100_000, 10_000)
    assert q.trucks in q.scaling_trucks and max(q.scaling_trucks) < Sizes().scaling_trucks[-1]


def _fanout(p99: int, **extra: object) -> dict[str, object]:
    return {
        "status": "ok",
        "method": "m",
        "clients": 5000,
        "produce_rate_per_s": 10_000,
        "delivered_per_s": 36_000,
        "latency_ms_p99": p99,
        "clients_closed": 0,
        "deliveries_missing_at_least": 0,
        **extra,
    }


def test_fanout_is_judged_on_its_own_cpu_run_with_the_shared_one_beside_it() -> None:
    sec = _fanout(
        150,
        gateway_cpus=[0],
        shared={**_fanout(380), "method": "shared m", "gateway_cpus": "shared"},
    )
    rows = report.summary_rows({"sections": {"fanout": sec}})
    fan = [r for r in rows if r[0].startswith("5.")]
    assert fan[0] == [
        "5. gateway fan-out, 5000 clients x 10,000 positions/s, gateway on its own CPU",
        "36,000 msgs/s, p99 150 ms",
        "p99 < 200 ms, none lost",
        "met",
    ]
    assert fan[1][1:3] == ["36,000 msgs/s, p99 380 ms", "for reference"]
    md = "\n".join(report._fanout_md(sec))
    assert "| measure | gateway on its own CPU (judged) | all sharing the CPUs |" in md
    assert "| latency_ms_p99 | 150 | 380 |" in md
    assert "Beside it, for reference: shared m" in md


def test_fanout_misses_when_an_update_is_lost_or_a_client_closed() -> None:
    assert report.fanout_verdict(_fanout(150)) == "met"
    assert report.fanout_verdict(_fanout(250)) == "**missed**"
    assert report.fanout_verdict(_fanout(150, deliveries_missing_at_least=3)) == "**missed**"
    assert report.fanout_verdict(_fanout(150, clients_closed=1)) == "**missed**"
    assert report.fanout_verdict(_fanout(150, latency_ms_p99=None)) == "not measured"


def test_fanout_gives_the_gateway_the_lowest_cpu_only_when_one_is_left() -> None:
    from bench.sections.fanout import gateway_cpu_for

    assert gateway_cpu_for({3, 1, 2}) == 1
    assert gateway_cpu_for({5}) is None


def test_update_replaces_only_the_sections_run_now_and_says_when() -> None:
    previous = sample_results()
    previous["run"]["started_utc"] = "2026-11-26 19:07"
    current = {
        "run": {
            "started_utc": "2026-11-27 03:50",
            "command": "fleetpulse bench --only fanout --update",
            "notes": ["Input size: not the issue's"],
        },
        "machine": {"loadavg": "0.50 0.40 0.30"},
        "sections": {"fanout": {**_fanout(150), "measured_utc": "2026-11-27 03:50"}},
    }
    merged = report.merge_update(previous, current, ["why"])
    assert merged["sections"]["fanout"]["latency_ms_p99"] == 150
    assert merged["sections"]["throughput"] == previous["sections"]["throughput"]
    assert merged["run"]["started_utc"] == "2026-11-26 19:07"
    assert merged["run"]["notes"][-2:] == [
        "Re-measured on 2026-11-27 03:50 (UTC) by `fleetpulse bench --only fanout --update`: "
        "fanout (load average then: 0.50 0.40 0.30); the other sections are from the run "
        "above.",
        "why",
    ]
    assert "fanout" not in previous["sections"]  # the earlier results are not modified
    md = report.markdown(merged)
    assert "## 5. Gateway fan-out\n\nMeasured on 2026-11-27 03:50 (UTC).\n" in md
    assert "## 6. Memory\n\nNot measured" in md


def test_update_refuses_to_start_without_earlier_results(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bench.cli import bench

    result = CliRunner().invoke(bench, ["--only", "fanout", "--update", "--out-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--update" in result.output and "bench-results.json" in result.output
    assert not (tmp_path / "BENCHMARKS.md").exists()


def profile_section() -> dict:  # type: ignore[type-arg]
    from bench.sections.profile import conclude

    steps = [
        {"step": "parse_ping (orjson + validation)", "us_per_ping": 5.0, "rate_per_s": 200_000},
        {
            "step": "sum: the job's own work per ping in one thread",
            "us_per_ping": 50.0,
            "rate_per_s": 20_000,
        },
    ]
    job = {"name": "fleetpulse p=1", "status": "ok", "rate": 14_000, "cpu_us_per_ping": 82.0}
    threads = [
        {"process": "java", "threads": "truck-state (1/", "cores": 0.7, "us_per_ping": 50.0},
        {"process": "redis-server", "threads": "redis-server", "cores": 0.4, "us_per_ping": 28.6},
        {"process": "java", "threads": "redis-positions", "cores": 0.15, "us_per_ping": 10.7},
    ]
    return {
        "status": "ok",
        "steps": steps,
        "job": job,
        "threads": threads,
        "window": {"seconds": 35.0, "share": 0.5},
        "method": "M.",
        "conclusion": conclude(steps, job, threads),
    }


def test_profile_shows_the_threads_of_the_job_and_reads_them() -> None:
    results = sample_results()
    results["sections"]["profile"] = profile_section()
    md = report.markdown(results, chart_name=None)
    assert "| java | truck-state (1/ | 0.70 | 50.0 |" in md
    assert (
        "The job: 14,000 pings/s, 82 CPU µs per ping (its process tree); threads read "
        "over 35.0 s, 50 % of the input." in md
    )
    conclusion = results["sections"]["profile"]["conclusion"]
    assert "at most 20,000 pings/s" in conclusion
    assert "the truck function's task thread 0.70 and the Redis writer thread 0.15" in conclusion
    assert "(0.85 of the one core" in conclusion and "redis-server 0.40" in conclusion
    assert "used 1.25 of the machine's cores" in conclusion
    assert "Flink job cut" not in md


def test_profile_of_before_keeps_its_job_cuts() -> None:
    results = sample_results()
    results["sections"]["profile"] = {
        "status": "ok",
        "steps": [],
        "conclusion": "C.",
        "method": "M.",
        "stages": [
            {
                "name": "Flink: whole job",
                "status": "ok",
                "rate": 5701,
                "us_per_ping": 175.4,
                "cpu_us_per_ping": 240,
            }
        ],
    }
    md = report.markdown(results, chart_name=None)
    assert "| Flink: whole job | ok | 5,701 | 175.4 | 240 |  |" in md


def test_profile_says_why_the_job_was_not_read() -> None:
    from bench.sections.profile import conclude

    steps = profile_section()["steps"]
    text = conclude(steps, {"status": "failed", "reason": "exited early"}, [])
    assert text.startswith("Our own work, measured alone in one thread, is 50 µs per ping")
    assert text.endswith("the job run was not measured: exited early")


def test_cost_growth_summary_counts_the_jvm_where_the_state_lives() -> None:
    results = sample_results()
    results["sections"]["scaling"] = {
        "status": "ok",
        "runs": [
            {"trucks": 10_000, "rate": 14_436, "peak_rss_mib": 224, "tree_peak_rss_mib": 1557},
            {"trucks": 1_000_000, "rate": 12_009, "peak_rss_mib": 224, "tree_peak_rss_mib": 3381},
        ],
    }
    rows = {r[0]: r for r in report.summary_rows(results)}
    assert (
        rows["7. cost growth (trucks: rate, job peak RSS with its JVM)"][1]
        == "10,000: 14,436/s, 1,557 MiB; 1,000,000: 12,009/s, 3,381 MiB"
    )


def test_a_consumer_that_exits_badly_after_its_input_says_so() -> None:
    assert report.run_status({"status": "ok", "exit_code": 0}) == "ok"
    assert report.run_status({"status": "ok"}) == "ok"
    assert report.run_status({"status": "ok", "exit_code": 1}) == "ok, exited 1"
    assert report.run_status({"status": "failed", "exit_code": 1}) == "failed"
