"""Render fleetpulse's Grafana dashboards as PNGs from a live Prometheus, without Grafana.

docs/operations.md shows what the dashboards look like on a real run; no Grafana runs here,
so this evaluates each panel's PromQL against Prometheus' HTTP API the way Grafana would
(template variables at "All", ``$__rate_interval`` from the step and scrape interval) and
draws the panels with matplotlib where the dashboard's ``gridPos`` puts them.

    python -m bench.dashboard_png --prometheus http://127.0.0.1:9090 --minutes 12 --out-dir docs

The module is in three parts: pure logic (variables, legends, units, layout; unit-tested in
tests/bench/test_dashboard_png.py), the Prometheus client, and the matplotlib drawing.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx

from fleetpulse.paths import PROJECT_ROOT

DASHBOARD_DIR = PROJECT_ROOT / "deploy" / "grafana" / "dashboards"

# Panels drawn from a range query (a line per series) and from the last value.
RANGE_PANELS = frozenset({"timeseries", "graph", "barchart", "state-timeline", "heatmap"})
INSTANT_PANELS = frozenset({"stat", "gauge", "bargauge", "table", "singlestat"})
SKIPPED_PANELS = frozenset({"row", "text", "news", "dashlist", "alertlist"})

# ---------------------------------------------------------------------------------------------
# Pure logic
# ---------------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``15s``, ``1m30s`` or ``2h``."""
    text = text.strip()
    parts = list(_DURATION.finditer(text))
    if not parts or "".join(p.group(0) for p in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(p.group(1)) * _DURATION_SECONDS[p.group(2)] for p in parts)


def format_duration(seconds: float) -> str:
    """The shortest whole Prometheus duration for ``seconds`` (rounded up to a second)."""
    s = max(1, math.ceil(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def choose_step(window_seconds: float, points: int = 240, scrape_seconds: float = 15) -> float:
    """A query step giving about ``points`` points, never finer than the scrape interval."""
    return float(max(scrape_seconds, math.ceil(window_seconds / points)))


def rate_interval(step_seconds: float, scrape_seconds: float) -> float:
    """Grafana's ``$__rate_interval``: max(interval + scrape interval, 4 x scrape interval)."""
    return max(step_seconds + scrape_seconds, 4 * scrape_seconds)


def builtin_variables(
    window_seconds: float, step_seconds: float, scrape_seconds: float
) -> dict[str, str]:
    """Grafana's global variables that fleetpulse's queries may use."""
    return {
        "__interval": format_duration(step_seconds),
        "__interval_ms": str(int(step_seconds * 1000)),
        "__rate_interval": format_duration(rate_interval(step_seconds, scrape_seconds)),
        "__range": format_duration(window_seconds),
        "__range_s": str(int(window_seconds)),
        "__range_ms": str(int(window_seconds * 1000)),
    }


def template_values(
    dashboard: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each template variable's value: ``overrides``, else its "All" value, else its current one.

    fleetpulse's variables are multi-value with ``includeAll`` and ``allValue: .*``, used in
    regex matchers (``region=~"$region"``), so "All" is ``.*``. A datasource variable is not a
    PromQL value and is left out.
    """
    overrides = overrides or {}
    values: dict[str, str] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        name = var.get("name")
        if not name or var.get("type") == "datasource":
            continue
        if name in overrides:
            values[name] = overrides[name]
            continue
        current = var.get("current") or {}
        value = current.get("value")
        if isinstance(value, list):
            value = "|".join(str(v) for v in value)
        if value and value != "$__all":
            values[name] = str(value)
        elif var.get("includeAll") or var.get("multi"):
            values[name] = var.get("allValue") or ".*"
        elif (
            var.get("query")
            and isinstance(var["query"], str)
            and var.get("type") in ("constant", "custom", "textbox")
        ):
            values[name] = var["query"].split(",")[0].strip()
        else:
            values[name] = ".*"
    for name, value in overrides.items():
        values.setdefault(name, value)
    return values


_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)(?::[\w]+)?\]\]|\$(\w+)")


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with ``$name``, ``${name}``, ``${name:fmt}`` and ``[[name]]`` replaced.

    A name not in ``variables`` is left as written, so Prometheus names the problem.
    """

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return variables.get(name, m.group(0))

    return _VARIABLE.sub(replace, expr)


_LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def legend_name(legend_format: str | None, labels: Mapping[str, str], expr: str) -> str:
    """A series' name as Grafana shows it: ``legendFormat`` with ``{{label}}`` filled in.

    Without a format (or ``__auto``): ``metric{label="value", ...}``, or the query itself for
    a series with no labels at all (``sum(...)``).
    """
    if legend_format and legend_format != "__auto":
        return " ".join(
            _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), legend_format).split()
        )
    metric = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    if not metric and not rest:
        return expr
    return f"{metric}{{{rest}}}" if rest else metric


@dataclass(frozen=True)
class Cell:
    """Where a panel goes, in Grafana grid units (24 columns; y grows downwards)."""

    panel: Mapping[str, Any]
    x: int
    y: int
    w: int
    h: int


def flatten_panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel in order, rows included, with a collapsed row's panels after it."""
    out: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        if panel.get("type") == "row":
            out.extend(panel.get("panels") or [])
    return out


_DEFAULT_SIZE = {"row": (24, 1), "stat": (6, 4), "gauge": (6, 4), "table": (24, 6)}


def layout(panels: Sequence[Mapping[str, Any]], columns: int = 24) -> list[Cell]:
    """Grid cells of the panels to draw (rows kept as headings; text panels dropped).

    With every panel's ``gridPos`` the dashboard's own layout is kept, closing the vertical
    gaps left by dropped panels; without, panels flow left to right in order (stats 6 wide,
    graphs 12) as Grafana would lay out new ones.
    """
    keep = [p for p in panels if p.get("type") == "row" or p.get("type") not in SKIPPED_PANELS]
    if keep and all(_has_grid_pos(p) for p in keep):
        cells = [
            Cell(p, int(g["x"]), int(g["y"]), int(g["w"]), int(g["h"]))
            for p in keep
            for g in [p["gridPos"]]
        ]
        return _close_gaps(cells)
    cells = []
    x = y = row_h = 0
    for p in keep:
        w, h = _DEFAULT_SIZE.get(str(p.get("type")), (columns // 2, 8))
        w = min(w, columns)
        if x + w > columns or p.get("type") == "row":
            x, y = 0, y + row_h
            row_h = 0
        cells.append(Cell(p, x, y, w, h))
        x += w
        row_h = max(row_h, h)
        if p.get("type") == "row":
            x, y, row_h = 0, y + h, 0
    return cells


def _has_grid_pos(panel: Mapping[str, Any]) -> bool:
    g = panel.get("gridPos")
    return isinstance(g, Mapping) and all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h"))


def _close_gaps(cells: list[Cell]) -> list[Cell]:
    """Shift cells up over grid lines that no kept panel occupies."""
    if not cells:
        return cells
    height = max(c.y + c.h for c in cells)
    used = [False] * height
    for c in cells:
        for r in range(c.y, c.y + c.h):
            used[r] = True
    shift = [0] * (height + 1)
    for r in range(height):
        shift[r + 1] = shift[r] + (0 if used[r] else 1)
    return sorted(
        (Cell(c.panel, c.x, c.y - shift[c.y], c.w, c.h) for c in cells), key=lambda c: (c.y, c.x)
    )


def grid_height(cells: Iterable[Cell]) -> int:
    return max((c.y + c.h for c in cells), default=0)


def query_kind(panel_type: str) -> str | None:
    """``range``, ``instant`` or None (not drawn from queries)."""
    if panel_type in RANGE_PANELS:
        return "range"
    if panel_type in INSTANT_PANELS:
        return "instant"
    return None


# Grafana unit ids -> the words on an axis.
UNIT_LABELS = {
    "s": "seconds",
    "ms": "milliseconds",
    "µs": "microseconds",
    "ns": "nanoseconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "bytes": "bytes",
    "decbytes": "bytes",
    "bits": "bits",
    "reqps": "requests/s",
    "rps": "reads/s",
    "wps": "writes/s",
    "ops": "ops/s",
    "iops": "I/O ops/s",
    "percent": "%",
    "percentunit": "%",
    "none": "",
    "short": "",
}
_BYTE_STEPS = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
_SECOND_STEPS = (("days", 86400), ("hours", 3600), ("minutes", 60))


def axis_scale(unit: str | None, max_abs: float) -> tuple[float, str]:
    """(divisor, y-axis label) for a panel's unit and largest absolute value.

    Bytes are shown in KiB/MiB/GiB, seconds past three minutes/hours/days in the larger unit,
    milliseconds past ten seconds in seconds, ``percentunit`` (0-1) in percent.
    """
    unit = unit or ""
    if unit in ("bytes", "decbytes"):
        for name, size in _BYTE_STEPS:
            if max_abs >= size:
                return float(size), name
        return 1.0, "bytes"
    if unit == "s":
        for name, size in _SECOND_STEPS:
            if max_abs >= 3 * size:
                return float(size), name
        return 1.0, "seconds"
    if unit == "ms" and max_abs >= 10_000:
        return 1000.0, "seconds"
    if unit == "percentunit":
        return 0.01, "%"
    return 1.0, UNIT_LABELS.get(unit, unit)


def format_value(value: float | None, unit: str | None) -> str:
    """A stat's value with its unit, compact enough for a small panel."""
    if value is None or math.isnan(value):
        return "no data"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    unit = unit or ""
    if unit in ("s", "ms"):
        seconds = value / 1000 if unit == "ms" else value
        if seconds != 0 and abs(seconds) < 0.001:
            return f"{_num(seconds * 1e6)} µs"
        if seconds != 0 and abs(seconds) < 1:
            return f"{_num(seconds * 1000)} ms"
        for name, size in (("day", 86400), ("hour", 3600), ("min", 60)):
            if abs(seconds) >= size:
                return f"{_num(seconds / size)} {name}"
        return f"{_num(seconds)} s"
    if unit in ("bytes", "decbytes"):
        div, name = axis_scale(unit, abs(value))
        return f"{_num(value / div)} {name if name != 'bytes' else 'B'}"
    if unit == "percentunit":
        return f"{_num(value * 100)}%"
    if unit == "percent":
        return f"{_num(value)}%"
    suffix = {"reqps": " req/s", "rps": " rd/s", "wps": " wr/s", "ops": " ops/s", "h": " h"}
    return _short(value) + suffix.get(unit, "")


def _num(v: float) -> str:
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"


def _short(v: float) -> str:
    for name, size in (("Bil", 1e9), ("Mil", 1e6), ("K", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.3g} {name}"
    return _num(v)


# Grafana's named colours (its dark theme) and its classic palette for series.
NAMED_COLORS = {
    "green": "#73BF69",
    "red": "#F2495C",
    "orange": "#FF9830",
    "yellow": "#FADE2A",
    "blue": "#5794F2",
    "purple": "#B877D9",
    "text": "#CCCCDC",
    "transparent": "none",
}
PALETTE = (
    "#7EB26D",
    "#EAB839",
    "#6ED0E0",
    "#EF843C",
    "#E24D42",
    "#1F78C1",
    "#BA43A9",
    "#705DA0",
    "#508642",
    "#CCA300",
    "#447EBC",
    "#C15C17",
    "#F4D598",
    "#70DBED",
    "#F9BA8F",
    "#F29191",
    "#82B5D8",
    "#E5A8E2",
    "#AEA2E0",
    "#629E51",
)


def color(name: str | None, default: str = NAMED_COLORS["text"]) -> str:
    """A Grafana colour name (``green``, ``dark-red``, ``#hex``) as something matplotlib takes."""
    if not name:
        return default
    if name.startswith("#") or name.startswith("rgb"):
        return _rgb(name) if name.startswith("rgb") else name
    base = name.removeprefix("dark-").removeprefix("semi-dark-").removeprefix("light-")
    base = base.removeprefix("super-light-")
    return NAMED_COLORS.get(base, NAMED_COLORS.get(name, default))


def _rgb(text: str) -> str:
    nums = [float(n) for n in re.findall(r"[\d.]+", text)[:3]]
    return "#" + "".join(f"{int(n):02x}" for n in nums) if len(nums) == 3 else NAMED_COLORS["text"]


def threshold_color(value: float | None, thresholds: Mapping[str, Any] | None) -> str | None:
    """The colour of the highest absolute threshold step at or below ``value``."""
    if value is None or not thresholds or math.isnan(value):
        return None
    chosen = None
    for step in thresholds.get("steps", []):
        limit = step.get("value")
        if limit is None or value >= float(limit):
            chosen = step.get("color")
    return color(chosen) if chosen else None


def mapped(
    value: float | None, mappings: Sequence[Mapping[str, Any]] | None
) -> tuple[str, str | None] | None:
    """(text, colour) of a value mapping that matches ``value`` (value and range mappings)."""
    if value is None or math.isnan(value):
        return None
    for m in mappings or []:
        opts = m.get("options") or {}
        if m.get("type") == "value":
            key = str(int(value)) if value == int(value) else str(value)
            hit = opts.get(key)
            if hit:
                return str(hit.get("text", key)), color(hit.get("color")) if hit.get(
                    "color"
                ) else None
        elif m.get("type") == "range":
            lo, hi = opts.get("from"), opts.get("to")
            if (lo is None or value >= lo) and (hi is None or value <= hi):
                res = opts.get("result") or {}
                return str(res.get("text", _num(value))), color(res.get("color")) if res.get(
                    "color"
                ) else None
    return None


def with_gaps(points: Sequence[tuple[float, float]], step: float) -> list[tuple[float, float]]:
    """Points with a NaN after each gap longer than 1.5 steps, so lines break like Grafana's."""
    out: list[tuple[float, float]] = []
    for t, v in points:
        if out and t - out[-1][0] > 1.5 * step:
            out.append((out[-1][0] + step, math.nan))
        out.append((t, v))
    return out


LEGEND_CHAR_IN = 0.056  # width of one legend character at 6.5 pt, in inches (with margin)
LEGEND_HANDLE_IN = 0.35  # line sample and spacing before each legend entry
LEGEND_MIN_CUT = 50  # names may be cut to this many characters to get a second column


def y_limits(values: Iterable[float]) -> tuple[float | None, float | None]:
    """Y-axis limits: from 0 when nothing is negative, and 0 to 1 when everything is 0 (as
    Grafana draws a flat zero line; matplotlib would centre it on a -0.05..0.05 axis)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None, None
    lo, hi = min(finite), max(finite)
    if lo == hi == 0:
        return 0.0, 1.0
    return (0.0 if lo >= 0 else None), None


def fit_legend(names: Sequence[str], width_in: float, max_lines: int) -> tuple[int, list[str]]:
    """(columns, labels) of a legend under a graph ``width_in`` inches wide.

    As many columns as the longest name allows (counting at most ``LEGEND_MIN_CUT`` of its
    characters), names cut with "…" to the column width, and
    past ``max_lines`` lines the rest summed up as "+N more" (Grafana scrolls instead).
    """
    if not names:
        return 1, []
    longest = max(len(n) for n in names)
    per_col = LEGEND_HANDLE_IN + LEGEND_CHAR_IN * min(longest, LEGEND_MIN_CUT)
    ncol = max(1, min(len(names), int(width_in // per_col)))
    room = max(8, int((width_in / ncol - LEGEND_HANDLE_IN) / LEGEND_CHAR_IN))
    labels = [n if len(n) <= room else n[: room - 1] + "…" for n in names]
    if math.ceil(len(labels) / ncol) > max_lines:
        keep = ncol * max_lines - 1
        labels = labels[:keep] + [f"+{len(names) - keep} more"]
    return ncol, labels


def isolated_points(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indexes of values with no value beside them, which a line alone would not show."""

    def ok(j: int) -> bool:
        return 0 <= j < len(points) and not math.isnan(points[j][1])

    return [j for j in range(len(points)) if ok(j) and not ok(j - 1) and not ok(j + 1)]


def table_rows(
    label_sets: Sequence[Mapping[str, str]], exclude: Iterable[str] = ()
) -> tuple[list[str], list[list[str]]]:
    """(columns, rows) of an instant query shown as a table: one row per series, labels as
    columns (``alertname`` first, then alphabetical), minus the panel's excluded fields."""
    excluded = set(exclude) | {"__name__"}
    cols = sorted({k for labels in label_sets for k in labels if k not in excluded})
    cols.sort(key=lambda c: (c != "alertname", c))
    rows = [[labels.get(c, "") for c in cols] for labels in label_sets]
    return cols, sorted(rows)


def column_starts(widths: Sequence[int], left: float = 0.01, right: float = 0.99) -> list[float]:
    """Left edges (axes fraction) of table columns sized by their longest text, capped at 40."""
    sizes = [min(max(w, 4), 40) + 2 for w in widths]
    total = sum(sizes) or 1
    starts, x = [], left
    for size in sizes:
        starts.append(x)
        x += (right - left) * size / total
    return starts


def slug(title: str) -> str:
    """File-name part of a title: ``fleetpulse / Fleet operations`` -> ``fleet-operations``."""
    tail = title.split("/")[-1]
    return re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-") or "dashboard"


# ---------------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------------


class PrometheusError(Exception):
    """Prometheus refused a query (bad PromQL) or could not be reached."""


@dataclass
class Series:
    """One series of a query: its labels, its name in the legend, and (time, value) points."""

    labels: dict[str, str]
    name: str
    points: list[tuple[float, float]] = field(default_factory=list)

    @property
    def last(self) -> float | None:
        vals = [v for _, v in self.points if not math.isnan(v)]
        return vals[-1] if vals else None


@dataclass
class PanelData:
    """What a panel's queries returned (series of every target) and any query errors."""

    series: list[Series]
    errors: list[str]
    sparkline: list[Series] = field(default_factory=list)


class Prometheus:
    """The two read calls of Prometheus' HTTP API that the panels need."""

    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url.rstrip("/")
        self.client = client

    def _get(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        try:
            resp = self.client.get(f"{self.url}{path}", params=params)
        except httpx.HTTPError as e:
            raise PrometheusError(f"{self.url}: {e}") from e
        try:
            body = resp.json()
        except ValueError as e:
            raise PrometheusError(f"{self.url}{path}: HTTP {resp.status_code}, not JSON") from e
        if body.get("status") != "success":
            raise PrometheusError(str(body.get("error") or f"HTTP {resp.status_code}"))
        result = body.get("data", {}).get("result", [])
        return result if isinstance(result, list) else []

    def query(self, expr: str, at: float) -> list[tuple[dict[str, str], float, float]]:
        """Instant vector at ``at``: (labels, time, value) per series."""
        out = []
        for r in self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"}):
            t, v = r.get("value", (at, "NaN"))
            out.append((dict(r.get("metric", {})), float(t), float(v)))
        return out

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """Range query: (labels, points) per series."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return [
            (dict(r.get("metric", {})), [(float(t), float(v)) for t, v in r.get("values", [])])
            for r in self._get("/api/v1/query_range", params)
        ]


@dataclass(frozen=True)
class Window:
    """The time range drawn: [start, end] in Unix seconds, queried every ``step`` seconds."""

    start: float
    end: float
    step: float


def fetch_panel(
    prom: Prometheus, panel: Mapping[str, Any], variables: Mapping[str, str], window: Window
) -> PanelData:
    """Evaluate every visible target of a panel; a failing query becomes an error line."""
    kind = query_kind(str(panel.get("type")))
    series: list[Series] = []
    spark: list[Series] = []
    errors: list[str] = []
    for target in panel.get("targets", []):
        raw = target.get("expr")
        if not raw or target.get("hide"):
            continue
        expr = substitute(raw, variables)
        fmt = target.get("legendFormat")
        try:
            if kind == "range":
                for labels, pts in prom.query_range(expr, window.start, window.end, window.step):
                    series.append(Series(labels, legend_name(fmt, labels, expr), pts))
            elif kind == "instant":
                for labels, t, v in prom.query(expr, window.end):
                    series.append(Series(labels, legend_name(fmt, labels, expr), [(t, v)]))
                if (panel.get("options") or {}).get("graphMode") == "area":
                    for labels, pts in prom.query_range(
                        expr, window.start, window.end, window.step
                    ):
                        spark.append(Series(labels, legend_name(fmt, labels, expr), pts))
        except PrometheusError as e:
            errors.append(f"{target.get('refId', '?')}: {e}")
    return PanelData(series, errors, spark)


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

BG = "#111217"
PANEL_BG = "#181B1F"
BORDER = "#2C3235"
TEXT = "#CCCCDC"
MUTED = "#8E8E9E"

FIG_WIDTH_IN = 16.0
GRID_ROW_IN = 0.42  # Grafana: a 30 px grid row + margin against an ~80 px column
HEADING_IN = 0.75
PAD_IN = 0.06
TITLE_IN = 0.26


def render_dashboard(
    dashboard: Mapping[str, Any],
    cells: Sequence[Cell],
    data: Mapping[int, PanelData],
    window: Window,
    variables: Mapping[str, str],
    out: Path,
    dpi: int,
    note: str = "",
) -> None:
    """Draw the panels into a PNG at ``out`` (``data`` keyed by the cell's index); ``note``
    (what run this was) goes into the heading."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = grid_height(cells)
    height = HEADING_IN + rows * GRID_ROW_IN + PAD_IN
    fig = plt.figure(figsize=(FIG_WIDTH_IN, height), dpi=dpi, facecolor=BG)
    col_w = FIG_WIDTH_IN / 24

    def rect(
        x_in: float, y_in: float, w_in: float, h_in: float
    ) -> tuple[float, float, float, float]:
        """Figure-fraction rect of a box given in inches from the top-left corner."""
        return (x_in / FIG_WIDTH_IN, 1 - (y_in + h_in) / height, w_in / FIG_WIDTH_IN, h_in / height)

    start = datetime.fromtimestamp(window.start, UTC)
    end = datetime.fromtimestamp(window.end, UTC)
    minutes = round((window.end - window.start) / 60)
    fig.text(
        PAD_IN * 2 / FIG_WIDTH_IN,
        1 - 0.3 / height,
        str(dashboard.get("title", "dashboard")),
        color=TEXT,
        fontsize=15,
        weight="bold",
        va="center",
    )
    shown_vars = ", ".join(f"{k}={'All' if v == '.*' else v}" for k, v in sorted(variables.items()))
    sub = (
        f"{start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC ({minutes} min, step {window.step:g} s)"
        + (f"   {note}" if note else "")
        + (f"   variables: {shown_vars}" if shown_vars else "")
        + "   rendered from Prometheus by bench/dashboard_png.py"
    )
    fig.text(
        PAD_IN * 2 / FIG_WIDTH_IN, 1 - 0.58 / height, sub, color=MUTED, fontsize=9, va="center"
    )

    for i, cell in enumerate(cells):
        x_in = cell.x * col_w + PAD_IN
        y_in = HEADING_IN + cell.y * GRID_ROW_IN + PAD_IN
        w_in = cell.w * col_w - 2 * PAD_IN
        h_in = cell.h * GRID_ROW_IN - 2 * PAD_IN
        panel = cell.panel
        ptype = str(panel.get("type"))
        if ptype == "row":
            fig.text(
                (x_in + PAD_IN) / FIG_WIDTH_IN,
                1 - (y_in + h_in / 2) / height,
                str(panel.get("title", "")),
                color=TEXT,
                fontsize=11,
                weight="bold",
                va="center",
            )
            continue
        frame = fig.add_axes(rect(x_in, y_in, w_in, h_in))
        frame.set_facecolor(PANEL_BG)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color(BORDER)
        frame.text(
            0.01 if ptype not in ("stat", "gauge") else 0.5,
            1 - (TITLE_IN / 2) / h_in,
            str(panel.get("title", "")),
            transform=frame.transAxes,
            color=TEXT,
            fontsize=9,
            weight="bold",
            va="center",
            ha="left" if ptype not in ("stat", "gauge") else "center",
        )
        inner = (x_in, y_in + TITLE_IN, w_in, h_in - TITLE_IN)
        pdata = data.get(i, PanelData([], []))
        values = [v for s in pdata.series for _, v in s.points if not math.isnan(v)]
        if pdata.errors and not pdata.series:
            _message(frame, "query error: " + "; ".join(pdata.errors)[:160], "#F2495C")
            continue
        if not values and ptype != "table":
            _message(frame, "no data", MUTED)
            continue
        if ptype in ("stat", "gauge", "singlestat"):
            _draw_stat(fig, rect, frame, panel, pdata, inner)
        elif ptype == "table":
            _draw_table(frame, panel, pdata)
        elif ptype == "bargauge":
            _draw_bars(fig, rect, panel, pdata, inner)
        elif ptype == "state-timeline":
            _draw_states(fig, rect, panel, pdata, inner, window)
        else:
            _draw_timeseries(fig, rect, panel, pdata, inner, window)
    fig.savefig(out, dpi=dpi, facecolor=BG)
    plt.close(fig)
    _shrink_png(out)


def _shrink_png(path: Path) -> None:
    """Re-save with a 256-colour palette: a third of the size, and the docs keep these files."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _message(frame: Any, text: str, fg: str) -> None:
    frame.text(
        0.5,
        0.45,
        text,
        transform=frame.transAxes,
        color=fg,
        fontsize=10,
        ha="center",
        va="center",
        wrap=True,
    )


def _defaults(panel: Mapping[str, Any]) -> Mapping[str, Any]:
    return (panel.get("fieldConfig") or {}).get("defaults") or {}


def _style_axes(ax: Any) -> None:
    ax.set_facecolor(PANEL_BG)
    ax.tick_params(colors=MUTED, labelsize=7, length=2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.grid(True, color=BORDER, linewidth=0.6)
    ax.set_axisbelow(True)


def _draw_timeseries(
    fig: Any,
    rect: Any,
    panel: Mapping[str, Any],
    pdata: PanelData,
    inner: tuple[float, ...],
    window: Window,
) -> None:
    import matplotlib.dates as mdates

    x_in, y_in, w_in, h_in = inner
    series = pdata.series
    ncol, labels = fit_legend([s.name for s in series], w_in - 0.2, max_lines=5)
    lines = math.ceil(len(labels) / ncol) if labels else 0
    legend_in = 0.15 * lines + (0.08 if lines else 0)
    left_in, bottom_in = 0.62, 0.22
    ax = fig.add_axes(
        rect(
            x_in + left_in, y_in + 0.05, w_in - left_in - 0.12, h_in - 0.05 - bottom_in - legend_in
        )
    )
    _style_axes(ax)
    unit = _defaults(panel).get("unit")
    values = [
        abs(v) for s in series for _, v in s.points if not math.isnan(v) and not math.isinf(v)
    ]
    div, label = axis_scale(unit, max(values, default=0.0))
    handles = []
    for k, s in enumerate(series):
        pts = with_gaps(s.points, window.step)
        xs = [datetime.fromtimestamp(t, UTC) for t, _ in pts]
        ys = [v / div for _, v in pts]
        (line,) = ax.plot(xs, ys, color=PALETTE[k % len(PALETTE)], linewidth=1.2)
        lone = isolated_points(pts)
        if lone:
            ax.plot(
                [xs[j] for j in lone],
                [ys[j] for j in lone],
                "o",
                markersize=2.5,
                color=PALETTE[k % len(PALETTE)],
            )
        if len(series) <= 3:
            ax.fill_between(xs, ys, alpha=0.12, color=PALETTE[k % len(PALETTE)], linewidth=0)
        handles.append(line)
    ax.set_xlim(datetime.fromtimestamp(window.start, UTC), datetime.fromtimestamp(window.end, UTC))
    ax.set_ylim(*y_limits([v / div for s in series for _, v in s.points]))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=8))
    ax.yaxis.set_major_locator(_max_n_locator())
    if label:
        ax.set_ylabel(label, color=MUTED, fontsize=7, labelpad=2)
    if labels:
        hs = handles[: len(labels)]
        if len(labels) < len(handles):
            hs = handles[: len(labels) - 1] + [_blank_handle()]
        fig.legend(
            hs,
            labels,
            loc="upper left",
            # the legend strip under the graph, from its top-left corner
            bbox_to_anchor=(
                (x_in + 0.08) / FIG_WIDTH_IN,
                1 - (y_in + h_in - legend_in + 0.02) / fig.get_figheight(),
            ),
            bbox_transform=fig.transFigure,
            ncol=ncol,
            fontsize=6.5,
            frameon=False,
            labelcolor=TEXT,
            handlelength=1.2,
            columnspacing=1.0,
            borderaxespad=0,
            borderpad=0,
            labelspacing=0.25,
        )


def _max_n_locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=4)


def _blank_handle() -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="none")


def _draw_stat(
    fig: Any,
    rect: Any,
    frame: Any,
    panel: Mapping[str, Any],
    pdata: PanelData,
    inner: tuple[float, ...],
) -> None:
    x_in, y_in, w_in, h_in = inner
    d = _defaults(panel)
    unit, thresholds, mappings = d.get("unit"), d.get("thresholds"), d.get("mappings")
    if pdata.sparkline:
        ax = fig.add_axes(rect(x_in + 0.02, y_in + h_in * 0.45, w_in - 0.04, h_in * 0.55 - 0.02))
        ax.set_axis_off()
        for s in pdata.sparkline:
            pts = [(t, v) for t, v in s.points if not math.isnan(v)]
            if len(pts) > 1:
                c = threshold_color(s.last, thresholds) or PALETTE[0]
                ax.fill_between(
                    [t for t, _ in pts], [v for _, v in pts], alpha=0.18, color=c, linewidth=0
                )
                ax.plot([t for t, _ in pts], [v for _, v in pts], color=c, alpha=0.5, linewidth=0.8)
        lows = [v for s in pdata.sparkline for _, v in s.points if not math.isnan(v)]
        if lows and min(lows) >= 0:
            ax.set_ylim(bottom=0)
    n = len(pdata.series)
    for k, s in enumerate(sorted(pdata.series, key=lambda s: s.name)):
        value = s.last
        m = mapped(value, mappings)
        text = m[0] if m else format_value(value, unit)
        fg = (m[1] if m and m[1] else None) or threshold_color(value, thresholds) or TEXT
        cy = 0.42 - (k - (n - 1) / 2) * (0.62 / max(n, 1))
        size = 22 if n == 1 else max(9, 16 - 3 * n)
        if n > 1:
            frame.text(
                0.05, cy, s.name, transform=frame.transAxes, color=MUTED, fontsize=8, va="center"
            )
            frame.text(
                0.95,
                cy,
                text,
                transform=frame.transAxes,
                color=fg,
                fontsize=size,
                weight="bold",
                ha="right",
                va="center",
            )
        else:
            frame.text(
                0.5,
                cy,
                text,
                transform=frame.transAxes,
                color=fg,
                fontsize=size,
                weight="bold",
                ha="center",
                va="center",
            )


def _draw_table(frame: Any, panel: Mapping[str, Any], pdata: PanelData) -> None:
    exclude: set[str] = set()
    for t in panel.get("transformations") or []:
        if t.get("id") == "organize":
            exclude |= {
                k for k, v in ((t.get("options") or {}).get("excludeByName") or {}).items() if v
            }
    cols, rows = table_rows([s.labels for s in pdata.series], exclude)
    if not rows:
        _message(frame, "no data", MUTED)
        return
    max_rows = 8
    shown = rows[:max_rows]
    top = 0.80
    line = min(0.13, top / (len(shown) + 1.5))
    xs = column_starts([max([len(c)] + [len(r[i]) for r in shown]) for i, c in enumerate(cols)])
    for x, c in zip(xs, cols, strict=True):
        frame.text(
            x,
            top,
            c,
            transform=frame.transAxes,
            color=TEXT,
            fontsize=7.5,
            weight="bold",
            va="center",
        )
    frame.axhline(top - line / 2, xmin=0.01, xmax=0.99, color=BORDER, linewidth=0.8)
    for r, row in enumerate(shown):
        y = top - (r + 1) * line
        for x, v in zip(xs, row, strict=True):
            frame.text(x, y, v[:40], transform=frame.transAxes, color=TEXT, fontsize=7, va="center")
    if len(rows) > max_rows:
        frame.text(
            0.99,
            0.04,
            f"+{len(rows) - max_rows} more rows",
            transform=frame.transAxes,
            color=MUTED,
            fontsize=7,
            ha="right",
        )


def _draw_bars(
    fig: Any, rect: Any, panel: Mapping[str, Any], pdata: PanelData, inner: tuple[float, ...]
) -> None:
    x_in, y_in, w_in, h_in = inner
    d = _defaults(panel)
    unit, thresholds = d.get("unit"), d.get("thresholds")
    series = sorted(pdata.series, key=lambda s: s.name)
    names = [s.name for s in series]
    label_in = min(2.2, 0.3 + 0.065 * max(len(n) for n in names))
    ax = fig.add_axes(rect(x_in + label_in, y_in + 0.08, w_in - label_in - 0.7, h_in - 0.3))
    _style_axes(ax)
    ax.grid(False)
    vals = [s.last or 0.0 for s in series]
    colors = [
        threshold_color(v, thresholds) or PALETTE[k % len(PALETTE)] for k, v in enumerate(vals)
    ]
    if d.get("color", {}).get("mode") != "thresholds":
        colors = [PALETTE[k % len(PALETTE)] for k in range(len(vals))]
    ax.barh(range(len(vals)), vals, color=colors, height=0.7)
    ax.set_yticks(range(len(vals)))
    ax.set_yticklabels(names, color=TEXT, fontsize=7.5)
    ax.invert_yaxis()
    top = max(vals + [0.0])
    ax.set_xlim(0, top * 1.05 if top > 0 else 1)
    ax.set_xticks([])
    for k, v in enumerate(vals):
        ax.text(
            top * 1.06 if top > 0 else 1,
            k,
            format_value(v, unit),
            color=colors[k],
            fontsize=8,
            va="center",
            weight="bold",
            clip_on=False,
        )


def _draw_states(
    fig: Any,
    rect: Any,
    panel: Mapping[str, Any],
    pdata: PanelData,
    inner: tuple[float, ...],
    window: Window,
) -> None:
    import matplotlib.dates as mdates

    x_in, y_in, w_in, h_in = inner
    d = _defaults(panel)
    thresholds, mappings = d.get("thresholds"), d.get("mappings")
    series = sorted(pdata.series, key=lambda s: s.name)
    label_in = min(2.2, 0.3 + 0.065 * max(len(s.name) for s in series))
    ax = fig.add_axes(rect(x_in + label_in, y_in + 0.05, w_in - label_in - 0.15, h_in - 0.3))
    _style_axes(ax)
    ax.grid(False)
    day = 86400.0
    for k, s in enumerate(series):
        pts = [(t, v) for t, v in s.points if not math.isnan(v)]
        segments: list[tuple[float, float, float]] = []
        for j, (t, v) in enumerate(pts):
            t_next = pts[j + 1][0] if j + 1 < len(pts) else t + window.step
            t_next = min(t_next, t + 1.5 * window.step)
            if segments and segments[-1][2] == v and abs(segments[-1][1] - t) < 1e-6:
                segments[-1] = (segments[-1][0], t_next, v)
            else:
                segments.append((t, t_next, v))
        for t0, t1, v in segments:
            m = mapped(v, mappings)
            c = (m[1] if m and m[1] else None) or threshold_color(v, thresholds) or PALETTE[0]
            x0 = mdates.date2num(datetime.fromtimestamp(t0, UTC))
            ax.broken_barh([(x0, (t1 - t0) / day)], (k - 0.4, 0.8), color=c, alpha=0.85)
            if (t1 - t0) > (window.end - window.start) / 8:
                ax.text(
                    x0 + (t1 - t0) / day / 2,
                    k,
                    m[0] if m else _num(v),
                    color="#111217",
                    fontsize=7.5,
                    ha="center",
                    va="center",
                    weight="bold",
                )
    ax.set_yticks(range(len(series)))
    ax.set_yticklabels([s.name for s in series], color=TEXT, fontsize=7.5)
    ax.set_ylim(len(series) - 0.5, -0.5)
    ax.set_xlim(datetime.fromtimestamp(window.start, UTC), datetime.fromtimestamp(window.end, UTC))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=8))


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def load_dashboard(path: Path) -> dict[str, Any]:
    """A dashboard's JSON; a file that is not one refuses, naming --dashboard."""
    try:
        board = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise click.BadParameter(f"{path}: {e}", param_hint="--dashboard") from e
    if not isinstance(board, dict) or not isinstance(board.get("panels"), list):
        raise click.BadParameter(
            f"{path}: not a Grafana dashboard (no panels)", param_hint="--dashboard"
        )
    return board


def _default_prometheus() -> str:
    return f"http://127.0.0.1:{os.environ.get('FLEETPULSE_PROMETHEUS_PORT', '9090')}"


def _parse_vars(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{v!r}: expected NAME=VALUE", param_hint="--var")
        out[name] = value
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--prometheus",
    "prometheus_url",
    envvar="FLEETPULSE_PROMETHEUS_URL",
    default=_default_prometheus,
    show_default="http://127.0.0.1:$FLEETPULSE_PROMETHEUS_PORT, else port 9090",
    help="Base URL of the Prometheus to query.",
)
@click.option(
    "--dashboard",
    "dashboards",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Grafana dashboard JSON file (repeatable).",
    show_default="deploy/grafana/dashboards/*.json",
)
@click.option(
    "--minutes",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Length of the window drawn, ending now.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where the PNGs are written.",
)
@click.option(
    "--prefix",
    default="dashboard-",
    show_default=True,
    help="File name prefix: PREFIX + the title after its '/' (dashboard-overview.png).",
)
@click.option(
    "--scrape-interval",
    default="15s",
    show_default=True,
    help="Prometheus' scrape interval, for $__rate_interval as Grafana computes it.",
)
@click.option(
    "--var",
    "var_values",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a template variable instead of 'All' (repeatable).",
)
@click.option("--dpi", type=click.IntRange(min=30, max=300), default=100, show_default=True)
@click.option("--note", default="", help="Text for the heading, e.g. what run this was.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=20.0,
    show_default=True,
    help="Seconds allowed for each query.",
)
def main(
    prometheus_url: str,
    dashboards: tuple[Path, ...],
    minutes: int,
    out_dir: Path,
    prefix: str,
    scrape_interval: str,
    var_values: tuple[str, ...],
    dpi: int,
    note: str,
    timeout: float,
) -> None:
    """Render Grafana dashboards as PNGs from the data of a live Prometheus."""
    if not prometheus_url.startswith(("http://", "https://")):
        raise click.BadParameter(
            f"{prometheus_url!r} is not an http(s) URL", param_hint="--prometheus"
        )
    try:
        scrape = parse_duration(scrape_interval)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--scrape-interval") from e
    overrides = _parse_vars(var_values)
    paths = list(dashboards) or sorted(DASHBOARD_DIR.glob("*.json"))
    boards = [(p, load_dashboard(p)) for p in paths]
    out_dir.mkdir(parents=True, exist_ok=True)
    end = time.time()
    seconds = minutes * 60.0
    step = choose_step(seconds, scrape_seconds=scrape)
    window = Window(end - seconds, end, step)
    with httpx.Client(timeout=timeout) as client:
        prom = Prometheus(prometheus_url, client)
        try:
            prom.query("vector(1)", end)
        except PrometheusError as e:
            raise click.ClickException(
                f"Prometheus at --prometheus {prometheus_url} does not answer: {e}"
            ) from e
        for path, board in boards:
            variables = template_values(board, overrides)
            all_vars = {**builtin_variables(seconds, step, scrape), **variables}
            cells = layout(flatten_panels(board))
            data = {
                i: fetch_panel(prom, c.panel, all_vars, window)
                for i, c in enumerate(cells)
                if query_kind(str(c.panel.get("type")))
            }
            out = out_dir / f"{prefix}{slug(str(board.get('title', path.stem)))}.png"
            render_dashboard(board, cells, data, window, variables, out, dpi, note)
            empty = sum(1 for d in data.values() if not d.series)
            for i, d in data.items():
                for err in d.errors:
                    title = cells[i].panel.get("title", "?")
                    click.echo(f"{path.name}: panel {title!r}: query error {err}", err=True)
            click.echo(
                f"{out}: {len(data)} panels ({empty} without data), "
                f"{out.stat().st_size // 1024} KiB"
            )


if __name__ == "__main__":
    main()
