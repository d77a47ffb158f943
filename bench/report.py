"""Pure helpers of the benchmark: percentiles, ratios, the markdown report, the JSON file and
the chart. Nothing here starts a process or opens a socket.

The results are one JSON-able dict::

    {"machine": {...}, "run": {...}, "sections": {name: {"status": "ok" | "not measured",
                                                          "reason": str, ...}}}

Each section module documents the keys it fills in.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

NOT_MEASURED = "not measured"


# -- numbers ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) by linear interpolation between closest ranks
    (numpy's default); NaN for no values."""
    if not values:
        return float("nan")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0..100")
    s = sorted(values)
    if len(s) == 1:
        return float(s[0])
    pos = (len(s) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def latency_summary(values_ms: Sequence[float]) -> dict[str, Any]:
    """n, p50/p95/p99/max in milliseconds (rounded to 0.1 ms)."""
    if not values_ms:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(values_ms),
        "p50_ms": round(percentile(values_ms, 50), 1),
        "p95_ms": round(percentile(values_ms, 95), 1),
        "p99_ms": round(percentile(values_ms, 99), 1),
        "max_ms": round(max(values_ms), 1),
    }


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, rounded to 2 places; None when either is missing or theirs is 0."""
    if ours is None or theirs is None or theirs == 0 or math.isnan(ours) or math.isnan(theirs):
        return None
    return round(ours / theirs, 2)


def parse_time_v(text: str) -> dict[str, float]:
    """The useful fields of GNU ``/usr/bin/time -v`` output: max RSS (KiB), user and system
    CPU seconds, wall seconds."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        value = value.strip()
        if key == "Maximum resident set size (kbytes)":
            out["max_rss_kib"] = float(value)
        elif key == "User time (seconds)":
            out["user_s"] = float(value)
        elif key == "System time (seconds)":
            out["system_s"] = float(value)
        elif key.startswith("Elapsed (wall clock) time"):
            parts = [float(x) for x in value.split(":")]
            secs = 0.0
            for x in parts:
                secs = secs * 60 + x
            out["wall_s"] = secs
    return out


# -- formatting ------------------------------------------------------------------------------


def fmt_num(x: float | int | None, digits: int = 0, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    s = f"{x:,.{digits}f}"
    return f"{s} {unit}".rstrip() if unit else s


def fmt_ms(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x / 1000:.2f} s" if x >= 10_000 else f"{x:,.0f} ms"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def verdict(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    ok = value >= target if higher_is_better else value < target
    return "met" if ok else "**missed**"


def fmt_p99(s: dict[str, Any]) -> str:
    """p99, or a lower bound when not every item arrived (the missing are slower)."""
    cov = s.get("coverage")
    if cov is not None and cov < 0.99:
        longest = s.get("max_ms")
        return (
            f"> {fmt_ms(longest)} (only {cov:.0%} arrived)"
            if longest is not None
            else "none arrived"
        )
    return fmt_ms(s.get("p99_ms"))


def verdict_p99(s: dict[str, Any], target_ms: float) -> str:
    cov = s.get("coverage")
    if cov is not None and cov < 0.99:
        return "**missed**"
    return verdict(s.get("p99_ms"), target_ms, False)


def _section(results: dict[str, Any], name: str) -> dict[str, Any]:
    sec = results.get("sections", {}).get(name)
    return sec if isinstance(sec, dict) else {"status": NOT_MEASURED, "reason": "not run"}


def _ok(sec: dict[str, Any]) -> bool:
    return sec.get("status") == "ok"


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per measure of the issue: what, result, target, verdict."""
    rows: list[list[str]] = []
    thr = _section(results, "throughput")
    if _ok(thr):
        best = thr.get("best") or {}
        rows.append(
            [
                "1. tracking job throughput",
                f"{fmt_num(best.get('rate'))} pings/s ({best.get('name', '?')})",
                "20,000/s",
                verdict(best.get("rate"), 20_000, True),
            ]
        )
        for peer, ratio_v in (thr.get("ratios") or {}).items():
            rows.append(
                [
                    f"2. ratio to {peer}",
                    f"{ratio_v if ratio_v is not None else '–'}x",
                    "≥ 1.0x",
                    verdict(ratio_v, 1.0, True),
                ]
            )
    else:
        rows.append(
            ["1-2. throughput and peers", NOT_MEASURED, "20,000/s, ≥ 1.0x", thr.get("reason", "")]
        )
    fr = _section(results, "freshness")
    if _ok(fr):
        for load in fr.get("loads", []):
            for where in ("redis", "websocket"):
                s = load.get(where) or {}
                target = 1000.0 if load.get("rate_per_s", 0) >= 10_000 else 30_000.0
                rows.append(
                    [
                        f"3. freshness p99, {load['label']}, to {where}",
                        fmt_p99(s),
                        f"< {fmt_ms(target)}",
                        verdict_p99(s, target),
                    ]
                )
    else:
        rows.append(["3. freshness", NOT_MEASURED, "p99 < 1 s at 10,000/s", fr.get("reason", "")])
    al = _section(results, "alerts")
    if _ok(al):
        for src in al.get("sources", []):
            if src.get("status") != "ok":
                rows.append(
                    [
                        f"4. alert latency ({src.get('alert_class')})",
                        NOT_MEASURED,
                        "p99 < 2 s",
                        src.get("reason", ""),
                    ]
                )
                continue
            where = f"{src['alert_class']}, {src.get('phase', '')}".rstrip(", ")
            for label, key in (
                ("watermark", "from_watermark"),
                ("wall-clock deadline", "from_deadline"),
            ):
                s = dict(src.get(key) or {})
                if src.get("expected"):
                    s["coverage"] = (s.get("n") or 0) / src["expected"]
                rows.append(
                    [
                        f"4. alert p99 from {label} ({where})",
                        fmt_p99(s),
                        "< 2 s",
                        verdict_p99(s, 2000),
                    ]
                )
    else:
        rows.append(["4. alert latency", NOT_MEASURED, "p99 < 2 s", al.get("reason", "")])
    fo = _section(results, "fanout")
    if _ok(fo):
        where = ", gateway on its own CPU" if isinstance(fo.get("gateway_cpus"), list) else ""
        rows.append(
            [
                f"5. gateway fan-out, {fo.get('clients')} clients x "
                f"{fmt_num(fo.get('produce_rate_per_s'))} positions/s{where}",
                _fanout_result(fo),
                "p99 < 200 ms, none lost",
                fanout_verdict(fo),
            ]
        )
        shared = fo.get("shared")
        if isinstance(shared, dict):
            rows.append(
                [
                    "5. same, the load generator sharing the gateway's CPUs",
                    _fanout_result(shared) if _ok(shared) else NOT_MEASURED,
                    "for reference",
                    shared.get("reason", "not judged"),
                ]
            )
    else:
        rows.append(["5. gateway fan-out", NOT_MEASURED, "", fo.get("reason", "")])
    mem = _section(results, "memory")
    if _ok(mem):
        total = mem.get("system_peak_mib")
        rows.append(
            [
                "6. whole-system peak RSS",
                fmt_num(total, 0, "MiB"),
                "< 4,096 MiB",
                verdict(total, 4096, False),
            ]
        )
    else:
        rows.append(["6. memory", NOT_MEASURED, "< 4 GiB", mem.get("reason", "")])
    sc = _section(results, "scaling")
    if _ok(sc):
        parts = [
            f"{fmt_num(r.get('trucks'))}: {fmt_num(r.get('rate'))}/s, "
            f"{fmt_num(r.get('tree_peak_rss_mib'))} MiB"
            for r in sc.get("runs", [])
        ]
        # the tree's peak, JVM included: in thread mode the truck state lives in the JVM's
        # process, and the launching Python process stays the same size whatever the fleet
        rows.append(
            [
                "7. cost growth (trucks: rate, job peak RSS with its JVM)",
                "; ".join(parts),
                "(no target)",
                "–",
            ]
        )
    else:
        rows.append(["7. cost growth", NOT_MEASURED, "", sc.get("reason", "")])
    return rows


def _machine_lines(m: dict[str, Any]) -> list[str]:
    return [
        f"- CPU: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; memory "
        f"{fmt_num(m.get('mem_gib'), 1)} GiB; {m.get('os', '?')}",
        f"- Python {m.get('python', '?')}, {m.get('java', '?')}, apache-flink "
        f"{m.get('flink', '?')}, Kafka {m.get('kafka', '?')}, Redis {m.get('redis', '?')}, "
        f"quixstreams {m.get('quixstreams') or 'not installed'}",
        f"- load average when the run started: {m.get('loadavg', '?')} (the machine is "
        "shared; the run is not isolated from other work)",
    ]


def run_status(run: dict[str, Any]) -> str:
    """A throughput run's status, with the consumer's exit code when it did not end cleanly
    (its rate still stands: it is measured in Redis before the consumer ends)."""
    status = str(run.get("status", "ok"))
    code = run.get("exit_code")
    return f"{status}, exited {code}" if status == "ok" and code not in (0, None) else status


def _throughput_md(sec: dict[str, Any]) -> list[str]:
    out = [
        f"Input: {fmt_num(sec.get('pings'))} pings from {fmt_num(sec.get('trucks'))} trucks "
        f"preloaded in `{sec.get('topic')}` ({sec.get('partitions')} partitions, "
        f"{fmt_num(sec.get('bytes_per_ping'))} bytes per ping). Rate = pings / (last "
        "position readable in Redis - first position readable in Redis); every truck's "
        "final position is then checked in Redis.",
        "",
    ]
    rows = []
    for r in sec.get("runs", []):
        rows.append(
            [
                r.get("name"),
                run_status(r),
                fmt_num(r.get("rate")),
                fmt_num(r.get("seconds"), 1),
                fmt_num(r.get("startup_s"), 1),
                fmt_num(r.get("cpu_us_per_ping")),
                fmt_num(r.get("peak_rss_mib")),
                fmt_num(r.get("tree_peak_rss_mib")),
                r.get("note", "") or r.get("reason", ""),
            ]
        )
    out.append(
        md_table(
            [
                "consumer",
                "status",
                "pings/s",
                "processing s",
                "start-up s",
                "CPU µs/ping",
                "max RSS MiB (time -v)",
                "tree peak RSS MiB",
                "note",
            ],
            rows,
        )
    )
    if sec.get("ratios"):
        out += [
            "",
            "Ratios (best fleetpulse rate / peer rate): "
            + ", ".join(f"{k} {v}x" for k, v in sec["ratios"].items()),
        ]
    if sec.get("pin_ratios"):
        out += [
            "",
            "Pinned / unpinned (the run before it): "
            + ", ".join(f"{k} {v}x" for k, v in sec["pin_ratios"].items()),
        ]
    return out


def _freshness_md(sec: dict[str, Any]) -> list[str]:
    rows = []
    for load in sec.get("loads", []):
        for where in ("redis", "websocket"):
            s = load.get(where) or {}
            cov = s.get("coverage")
            rows.append(
                [
                    load.get("label"),
                    fmt_num(load.get("achieved_rate_per_s")),
                    where,
                    fmt_num(s.get("n")),
                    "–" if cov is None else f"{cov:.1%}",
                    fmt_ms(s.get("p50_ms")),
                    fmt_ms(s.get("p95_ms")),
                    fmt_p99(s),
                    fmt_ms(s.get("max_ms")),
                ]
            )
    return [
        sec.get("method", ""),
        "",
        md_table(
            ["load", "sent/s", "readable in", "samples", "coverage", "p50", "p95", "p99", "max"],
            rows,
        ),
    ]


def _alerts_md(sec: dict[str, Any]) -> list[str]:
    out = [sec.get("method", ""), ""]
    rows = []
    for src in sec.get("sources", []):
        if src.get("status") != "ok":
            rows.append(
                [src.get("alert_class"), "", NOT_MEASURED, "", "", "", "", src.get("reason", "")]
            )
            continue
        for label, key in (
            ("watermark passes D", "from_watermark"),
            ("wall clock passes D", "from_deadline"),
        ):
            s = dict(src.get(key) or {})
            if src.get("expected"):
                s["coverage"] = (s.get("n") or 0) / src["expected"]
            rows.append(
                [
                    src.get("alert_class"),
                    src.get("phase", ""),
                    label,
                    f"{s.get('n', 0)}/{src.get('expected', '?')}",
                    fmt_ms(s.get("p50_ms")),
                    fmt_p99(s),
                    fmt_ms(s.get("max_ms")),
                    src.get("note", ""),
                ]
            )
    out.append(
        md_table(["alert", "load", "from", "received/expected", "p50", "p99", "max", "note"], rows)
    )
    return out


def _memory_md(sec: dict[str, Any]) -> list[str]:
    rows = [
        [p.get("name"), fmt_num(p.get("peak_rss_mib")), p.get("where", "")]
        for p in sec.get("processes", [])
    ]
    return [
        sec.get("method", ""),
        "",
        md_table(["process", "peak RSS MiB", "measured in"], rows),
        "",
        f"Whole system (sum of the peaks of the live run): "
        f"**{fmt_num(sec.get('system_peak_mib'))} MiB**; Redis `used_memory_peak` "
        f"{fmt_num(sec.get('redis_used_memory_peak_mib'))} MiB.",
    ]


def _scaling_md(sec: dict[str, Any]) -> list[str]:
    rows = [
        [
            fmt_num(r.get("trucks")),
            fmt_num(r.get("pings_processed", r.get("pings"))),
            r.get("name", ""),
            r.get("status", "ok"),
            fmt_num(r.get("rate")),
            fmt_num(r.get("peak_rss_mib")),
            fmt_num(r.get("tree_peak_rss_mib")),
            fmt_num(r.get("redis_used_mib")),
        ]
        for r in sec.get("runs", [])
    ]
    return [
        sec.get("method", ""),
        "",
        md_table(
            [
                "trucks",
                "pings processed",
                "consumer",
                "status",
                "pings/s",
                "job max RSS MiB",
                "job tree peak MiB",
                "Redis used MiB",
            ],
            rows,
        ),
    ]


def _fanout_result(sec: dict[str, Any]) -> str:
    return f"{fmt_num(sec.get('delivered_per_s'))} msgs/s, p99 {fmt_ms(sec.get('latency_ms_p99'))}"


def fanout_verdict(sec: dict[str, Any]) -> str:
    """Met when p99 is under 200 ms and nothing was lost: no client closed, no delivery
    unaccounted for (neither received nor coalesced into a newer position)."""
    if sec.get("clients_closed") or sec.get("deliveries_missing_at_least"):
        return "**missed**"
    return verdict(sec.get("latency_ms_p99"), 200, False)


_FANOUT_KEYS = [
    "gateway_cpus",
    "clients",
    "produce_rate_per_s",
    "positions_produced",
    "deliveries_expected",
    "deliveries_received",
    "coalesced_total",
    "deliveries_missing_at_least",
    "clients_closed",
    "delivered_per_s",
    "latency_ms_p50",
    "latency_ms_p99",
    "latency_ms_max",
    "gateway_cpu_pct",
    "gateway_runqueue_wait_pct",
    "gateway_cpu_us_per_message",
    "clients_cpu_pct",
    "producer_cpu_pct",
    "machine_busy_pct",
    "gateway_rss_mib_peak",
    "memory_kib_per_connection",
]


def _fanout_md(sec: dict[str, Any]) -> list[str]:
    shared = sec.get("shared") if isinstance(sec.get("shared"), dict) else None
    if shared is None:
        rows = [[k, sec.get(k, "–")] for k in _FANOUT_KEYS if k in sec]
        return [sec.get("method", ""), "", md_table(["measure", "value"], rows)]
    rows = [
        [k, sec.get(k, "–"), shared.get(k, "–")] for k in _FANOUT_KEYS if k in sec or k in shared
    ]
    lines = [sec.get("method", ""), "", f"Beside it, for reference: {shared.get('method', '')}", ""]
    if not _ok(shared):
        lines += [f"The shared run was not measured: {shared.get('reason', '')}", ""]
    return lines + [
        md_table(["measure", "gateway on its own CPU (judged)", "all sharing the CPUs"], rows)
    ]


def _profile_md(sec: dict[str, Any]) -> list[str]:
    rows = [
        [s.get("step"), fmt_num(s.get("us_per_ping"), 1), fmt_num(s.get("rate_per_s"))]
        for s in sec.get("steps", [])
    ]
    lines = [
        sec.get("method", ""),
        "",
        md_table(["step (one Python thread, no Flink)", "µs per ping", "pings/s alone"], rows),
        "",
    ]
    if "stages" in sec:  # results of before 2026-11-28: the per-record job cut by stage
        stages = [
            [
                r.get("name"),
                r.get("status", "ok"),
                fmt_num(r.get("rate")),
                fmt_num(r.get("us_per_ping"), 1),
                fmt_num(r.get("cpu_us_per_ping")),
                r.get("reason", "")[:200],
            ]
            for r in sec["stages"]
        ]
        lines += [
            md_table(
                ["Flink job cut (p=1)", "status", "pings/s", "wall µs/ping", "CPU µs/ping", "note"],
                stages,
            ),
            "",
        ]
    if sec.get("threads"):
        job, window = sec.get("job", {}), sec.get("window", {})
        lines += [
            f"The job: {fmt_num(job.get('rate'))} pings/s, "
            f"{fmt_num(job.get('cpu_us_per_ping'))} CPU µs per ping (its process tree); "
            f"threads read over {fmt_num(window.get('seconds'), 1)} s, "
            f"{fmt_num(100 * (window.get('share') or 0))} % of the input.",
            "",
            md_table(
                ["process", "threads", "cores", "CPU µs per ping"],
                [
                    [
                        t.get("process"),
                        t.get("threads"),
                        fmt_num(t.get("cores"), 2),
                        fmt_num(t.get("us_per_ping"), 1),
                    ]
                    for t in sec["threads"]
                ],
            ),
            "",
        ]
    return lines + [sec.get("conclusion", "")]


SECTION_TITLES = {
    "throughput": ("1-2. Throughput and peers", _throughput_md),
    "freshness": ("3. Freshness at fixed load", _freshness_md),
    "alerts": ("4. Alert latency", _alerts_md),
    "fanout": ("5. Gateway fan-out", _fanout_md),
    "memory": ("6. Memory", _memory_md),
    "scaling": ("7. How cost grows", _scaling_md),
    "profile": ("What limits throughput", _profile_md),
}


def markdown(results: dict[str, Any], chart_name: str | None = "bench-chart.png") -> str:
    run = results.get("run", {})
    lines = [
        "# fleetpulse benchmarks",
        "",
        f"Measured by `{run.get('command', 'fleetpulse bench')}` on "
        f"{run.get('started_utc', '?')} (UTC), {fmt_num(run.get('duration_s'))} s in "
        "all. Numbers in one run, on one machine:",
        "",
        *_machine_lines(results.get("machine", {})),
        "",
        "Raw numbers: [`bench-results.json`](bench-results.json). Reproduce with "
        "`fleetpulse bench` (the issue's sizes: 1,000,000 pings from 100,000 trucks), "
        "`fleetpulse bench --quick` (a smoke run of the same code), or pick sections and "
        "sizes: `--only throughput,profile,live,fanout,scaling`, `--pings`, `--trucks`, "
        "`--parallelism 1,2`, `--scaling-time-box-s`, `--out-dir`, and `--update` to "
        "re-run the sections of `--only` into the existing results. The Quix Streams peer "
        "needs `quixstreams` importable by this interpreter or by `--quix-python` / "
        "`$FLEETPULSE_QUIX_PYTHON`. Code: `bench/`.",
        "",
    ]
    if run.get("notes"):
        lines += [*(f"- {n}" for n in run["notes"]), ""]
    lines += [
        "## Summary",
        "",
        md_table(["measure", "result", "target", "verdict"], summary_rows(results)),
        "",
    ]
    if chart_name:
        lines += [f"![throughput and latency]({chart_name})", ""]
    for name, (title, render) in SECTION_TITLES.items():
        sec = _section(results, name)
        lines += [f"## {title}", ""]
        if not _ok(sec):
            lines += [f"Not measured: {sec.get('reason', 'not run')}", ""]
            continue
        if sec.get("measured_utc") not in (None, run.get("started_utc")):
            lines += [f"Measured on {sec['measured_utc']} (UTC).", ""]
        lines += [*render(sec), ""]
        if sec.get("notes"):
            lines += [*(f"- {n}" for n in sec["notes"]), ""]
    return "\n".join(lines).rstrip() + "\n"


def merge_update(
    previous: dict[str, Any], current: dict[str, Any], notes: Sequence[str] = ()
) -> dict[str, Any]:
    """``previous`` with the sections ``current`` measured replaced, and a note saying when
    and by what command: re-running one section keeps the other sections' numbers (and says
    that they come from two runs)."""
    merged = copy.deepcopy(previous)
    merged.setdefault("sections", {}).update(copy.deepcopy(current.get("sections", {})))
    run = merged.setdefault("run", {})
    cur = current.get("run", {})
    load = current.get("machine", {}).get("loadavg")
    run["notes"] = [
        *run.get("notes", []),
        f"Re-measured on {cur.get('started_utc', '?')} (UTC) by "
        f"`{cur.get('command', '?')}`: {', '.join(current.get('sections', {}))}"
        + (f" (load average then: {load})" if load else "")
        + "; the other "
        "sections are from the run above.",
        *notes,
    ]
    return merged


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")


def console_summary(results: dict[str, Any]) -> str:
    rows = summary_rows(results)
    width = max((len(r[0]) for r in rows), default=10)
    return "\n".join(f"{r[0]:<{width}}  {r[1]}  [target {r[2]}: {r[3]}]" for r in rows)


# -- chart -----------------------------------------------------------------------------------


def short_load(label: str) -> str:
    return label.replace(",000 pings/min", "k/min").replace(",000 pings/s", "k/s")


def chart_series(
    results: dict[str, Any],
) -> tuple[list[tuple[str, float]], list[tuple[str, float, float, float, bool]]]:
    """(throughput bars: (label, pings/s)), (latency groups: (label, p50, p95, p99 in ms,
    complete)); a group is incomplete when not everything arrived (its bars are lower
    bounds)."""
    bars: list[tuple[str, float]] = []
    thr = _section(results, "throughput")
    for r in thr.get("runs", []) if _ok(thr) else []:
        if r.get("rate") and r.get("status", "ok") == "ok":
            bars.append((str(r["name"]), float(r["rate"])))
    lat: list[tuple[str, float, float, float, bool]] = []
    fr = _section(results, "freshness")
    for load in fr.get("loads", []) if _ok(fr) else []:
        for where in ("redis", "websocket"):
            s = load.get(where) or {}
            if s.get("n"):
                complete = (s.get("coverage") or 1.0) >= 0.99
                lat.append(
                    (
                        f"ping->{'ws' if where == 'websocket' else where}\n"
                        f"{short_load(load['label'])}",
                        s["p50_ms"],
                        s["p95_ms"],
                        s["p99_ms"],
                        complete,
                    )
                )
    al = _section(results, "alerts")
    for src in al.get("sources", []) if _ok(al) else []:
        s = src.get("from_watermark") or {}
        if src.get("status") == "ok" and s.get("n"):
            complete = s["n"] >= 0.99 * (src.get("expected") or s["n"])
            cls = src["alert_class"].replace("shipment_", "").replace("truck_", "")
            lat.append(
                (
                    f"alert {cls}\n{short_load(src.get('phase', ''))}",
                    s["p50_ms"],
                    s["p95_ms"],
                    s["p99_ms"],
                    complete,
                )
            )
    return bars, lat


def write_chart(results: dict[str, Any], path: Path) -> str | None:
    """Write the PNG; returns None on success or the reason it could not be drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    bars, lat = chart_series(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    if bars:
        names = [b[0] for b in bars]
        values = [b[1] for b in bars]
        colors = ["#1f77b4" if n.startswith("fleetpulse") else "#999999" for n in names]
        ax1.barh(names, values, color=colors)
        ax1.axvline(20_000, color="#d62728", linestyle="--", label="target 20,000/s")
        for i, v in enumerate(values):
            ax1.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
        ax1.invert_yaxis()
        ax1.legend(loc="lower right", fontsize=8)
    else:
        ax1.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax1.transAxes)
    ax1.set_title("Throughput, preloaded input (pings/s)")
    ax1.set_xlabel("pings/s")
    if lat:
        xs = range(len(lat))
        w = 0.27
        for k, (label, color) in enumerate(
            (("p50", "#9ecae1"), ("p95", "#4292c6"), ("p99", "#08519c"))
        ):
            ax2.bar(
                [x + (k - 1) * w for x in xs],
                [row[k + 1] for row in lat],
                w,
                label=label,
                color=color,
                hatch=[None if row[4] else "//" for row in lat],
            )
        ax2.set_xticks(list(xs))
        ax2.set_xticklabels([row[0] for row in lat], fontsize=7)
        ax2.axhline(1000, color="#d62728", linestyle="--", linewidth=1, label="1 s")
        if not all(row[4] for row in lat):
            ax2.bar(
                [0],
                [0],
                color="white",
                edgecolor="black",
                hatch="//",
                label="incomplete (lower bound)",
            )
        ax2.set_yscale("log")
        ax2.legend(fontsize=8)
    else:
        ax2.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_title("Latency: freshness, and alerts from the watermark (ms, log)")
    fig.suptitle(
        f"fleetpulse bench - {results.get('run', {}).get('started_utc', '')} UTC, "
        f"{results.get('machine', {}).get('cores', '?')} cores",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
