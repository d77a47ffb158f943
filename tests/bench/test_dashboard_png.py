"""bench.dashboard_png: the pure logic that turns a Grafana dashboard into Prometheus queries
and a page layout, and the drawing of fetched data (from a stub Prometheus, no network)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bench import dashboard_png as dp

pytestmark = pytest.mark.unit

DASHBOARDS = sorted(dp.DASHBOARD_DIR.glob("*.json"))


def board(name: str) -> dict[str, Any]:
    return json.loads((dp.DASHBOARD_DIR / name).read_text())


# --- durations and Grafana's interval variables ----------------------------------------------


def test_durations_parse_and_format_round_trip() -> None:
    assert dp.parse_duration("15s") == 15
    assert dp.parse_duration("1m30s") == 90
    assert dp.parse_duration("2h") == 7200
    assert dp.format_duration(60) == "1m"
    assert dp.format_duration(90) == "90s"
    assert dp.format_duration(7200) == "2h"
    assert dp.format_duration(0.2) == "1s"
    for bad in ("", "15", "1x", "s15"):
        with pytest.raises(ValueError):
            dp.parse_duration(bad)


def test_rate_interval_is_grafanas_four_scrapes_or_step_plus_scrape() -> None:
    assert dp.rate_interval(15, 15) == 60  # 4 x 15 s
    assert dp.rate_interval(60, 15) == 75  # step + scrape
    window, step = 12 * 60.0, dp.choose_step(12 * 60.0)
    assert step == 15  # never finer than the scrape interval
    builtins = dp.builtin_variables(window, step, 15)
    assert builtins["__rate_interval"] == "1m"
    assert builtins["__interval"] == "15s"
    assert builtins["__range"] == "12m"
    assert dp.choose_step(6 * 3600.0) == 90  # about 240 points


# --- template variables -----------------------------------------------------------------------


def test_all_values_of_the_shipped_dashboards_are_regex_wildcards() -> None:
    values = dp.template_values(board("fleetpulse-operations.json"))
    assert values == {"region": ".*"}  # the datasource variable is not a PromQL value
    assert dp.template_values(board("fleetpulse-dispatcher.json")) == {
        "instance": ".*",
        "receiver": ".*",
    }


def test_current_value_and_overrides_win_over_all() -> None:
    d = {
        "templating": {
            "list": [
                {
                    "name": "a",
                    "type": "query",
                    "includeAll": True,
                    "allValue": ".+",
                    "current": {"value": "$__all"},
                },
                {"name": "b", "type": "query", "multi": True, "current": {"value": ["x", "y"]}},
                {"name": "c", "type": "custom", "query": "one,two", "current": {}},
                {"name": "d", "type": "query", "includeAll": True},
            ]
        }
    }
    assert dp.template_values(d) == {"a": ".+", "b": "x|y", "c": "one", "d": ".*"}
    assert dp.template_values(d, {"a": "WEST", "z": "1"})["a"] == "WEST"
    assert dp.template_values(d, {"z": "1"})["z"] == "1"


def test_substitute_every_variable_syntax_and_leave_unknown_ones() -> None:
    v = {"region": ".*", "__rate_interval": "1m", "__range": "12m"}
    expr = 'rate(x{region=~"$region"}[$__rate_interval]) + y{r=~"${region}", s=~"[[region]]"}'
    assert dp.substitute(expr, v) == 'rate(x{region=~".*"}[1m]) + y{r=~".*", s=~".*"}'
    assert dp.substitute('z{a="${region:regex}"}[$__range]', v) == 'z{a=".*"}[12m]'
    # $__range is not a prefix match of $__rate_interval, nor the other way round
    assert dp.substitute("$__range $__rate_interval", v) == "12m 1m"
    assert dp.substitute('w{j=~"$job"}', v) == 'w{j=~"$job"}'


def test_no_variable_is_left_in_any_shipped_dashboards_query() -> None:
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        variables = {**dp.builtin_variables(720, 15, 15), **dp.template_values(d)}
        for panel in dp.flatten_panels(d):
            for t in panel.get("targets", []):
                out = dp.substitute(t.get("expr", ""), variables)
                assert "$" not in out and "[[" not in out, (path.name, out)


# --- legends --------------------------------------------------------------------------------


def test_legend_fills_labels_like_grafana() -> None:
    labels = {"__name__": "m", "region": "WEST", "state": "moving"}
    assert dp.legend_name("{{region}} {{state}}", labels, "q") == "WEST moving"
    assert dp.legend_name("{{ region }}/{{missing}} x", labels, "q") == "WEST/ x"
    assert dp.legend_name("severity {{severity}}", {}, "q") == "severity"


def test_legend_without_format_is_the_series_or_the_query() -> None:
    assert dp.legend_name("", {"__name__": "up", "job": "a"}, "up") == 'up{job="a"}'
    assert dp.legend_name("__auto", {"job": "a"}, "sum by (job) (up)") == '{job="a"}'
    assert dp.legend_name(None, {}, "sum(up)") == "sum(up)"


def test_fit_legend_cuts_names_and_sums_up_the_rest() -> None:
    ncol, labels = dp.fit_legend(["a", "b", "c"], width_in=8, max_lines=5)
    assert (ncol, labels) == (3, ["a", "b", "c"])
    long = [f"task {i} " + "x" * 150 for i in range(18)]
    ncol, labels = dp.fit_legend(long, width_in=7.6, max_lines=5)
    assert ncol == 2
    assert len(labels) == 10 and labels[-1] == "+9 more"
    assert all(lab.endswith("…") for lab in labels[:-1])
    room = (7.6 / ncol - dp.LEGEND_HANDLE_IN) / dp.LEGEND_CHAR_IN
    assert all(len(lab) <= room for lab in labels)
    assert dp.fit_legend([], 5, 5) == (1, [])


# --- layout ---------------------------------------------------------------------------------


def test_layout_keeps_grid_pos_and_closes_gaps_of_dropped_panels() -> None:
    panels = [
        {"type": "row", "title": "r", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
        {"type": "text", "gridPos": {"x": 0, "y": 1, "w": 24, "h": 3}},
        {"type": "stat", "gridPos": {"x": 0, "y": 4, "w": 6, "h": 4}},
        {"type": "timeseries", "gridPos": {"x": 12, "y": 8, "w": 12, "h": 8}},
    ]
    cells = dp.layout(panels)
    assert [(c.panel["type"], c.x, c.y, c.w, c.h) for c in cells] == [
        ("row", 0, 0, 24, 1),
        ("stat", 0, 1, 6, 4),
        ("timeseries", 12, 5, 12, 8),
    ]
    assert dp.grid_height(cells) == 13


def test_layout_without_grid_pos_flows_in_panel_order() -> None:
    panels: list[dict[str, Any]] = [
        {"type": "stat"},
        {"type": "stat"},
        {"type": "timeseries"},
        {"type": "timeseries"},
        {"type": "row"},
        {"type": "timeseries"},
    ]
    got = [(c.x, c.y, c.w, c.h) for c in dp.layout(panels)]
    assert got == [
        (0, 0, 6, 4),
        (6, 0, 6, 4),
        (12, 0, 12, 8),
        (0, 8, 12, 8),
        (0, 16, 24, 1),
        (0, 17, 12, 8),
    ]


def test_shipped_dashboards_lay_out_without_overlaps() -> None:
    for path in DASHBOARDS:
        cells = dp.layout(dp.flatten_panels(json.loads(path.read_text())))
        taken: set[tuple[int, int]] = set()
        for c in cells:
            assert c.x + c.w <= 24, path.name
            squares = {(x, y) for x in range(c.x, c.x + c.w) for y in range(c.y, c.y + c.h)}
            assert not squares & taken, (path.name, c.panel.get("title"))
            taken |= squares


def test_collapsed_rows_panels_come_after_their_row() -> None:
    d = {
        "panels": [
            {"type": "row", "collapsed": True, "panels": [{"type": "stat"}]},
            {"type": "timeseries"},
        ]
    }
    assert [p["type"] for p in dp.flatten_panels(d)] == ["row", "stat", "timeseries"]


def test_query_kind_by_panel_type() -> None:
    assert dp.query_kind("timeseries") == "range"
    assert dp.query_kind("state-timeline") == "range"
    assert dp.query_kind("stat") == "instant"
    assert dp.query_kind("table") == "instant"
    assert dp.query_kind("text") is None


# --- units, values, colours -----------------------------------------------------------------


def test_axis_scale_picks_a_readable_unit() -> None:
    assert dp.axis_scale("bytes", 300 * 1024**2) == (1024**2, "MiB")
    assert dp.axis_scale("bytes", 10) == (1, "bytes")
    assert dp.axis_scale("s", 30) == (1, "seconds")
    assert dp.axis_scale("s", 4 * 3600) == (3600, "hours")
    assert dp.axis_scale("ms", 20_000) == (1000, "seconds")
    assert dp.axis_scale("percentunit", 0.5) == (0.01, "%")
    assert dp.axis_scale("reqps", 3) == (1, "requests/s")
    assert dp.axis_scale("short", 3) == (1, "")
    assert dp.axis_scale(None, 3) == (1, "")


def test_format_value_for_stats() -> None:
    assert dp.format_value(0.097, "s") == "97 ms"
    assert dp.format_value(0.0000195, "s") == "19.5 µs"
    assert dp.format_value(12.1, "s") == "12.1 s"
    assert dp.format_value(4500, "ms") == "4.5 s"
    assert dp.format_value(230, "s") == "3.83 min"
    assert dp.format_value(48_600, "short") == "48.6 K"
    assert dp.format_value(2, "short") == "2"
    assert dp.format_value(3 * 1024**2, "bytes") == "3 MiB"
    assert dp.format_value(0.25, "percentunit") == "25%"
    assert dp.format_value(None, "s") == "no data"
    assert dp.format_value(math.nan, "s") == "no data"


def test_thresholds_and_mappings_colour_a_value() -> None:
    steps = {
        "steps": [
            {"color": "red", "value": None},
            {"color": "orange", "value": 1},
            {"color": "green", "value": 2},
        ]
    }
    assert dp.threshold_color(0, steps) == dp.NAMED_COLORS["red"]
    assert dp.threshold_color(1, steps) == dp.NAMED_COLORS["orange"]
    assert dp.threshold_color(5, steps) == dp.NAMED_COLORS["green"]
    assert dp.threshold_color(None, steps) is None
    mappings = [
        {"type": "value", "options": {"1": {"text": "open", "color": "dark-red"}}},
        {"type": "range", "options": {"from": 2, "to": 9, "result": {"text": "many"}}},
    ]
    assert dp.mapped(1.0, mappings) == ("open", dp.NAMED_COLORS["red"])
    assert dp.mapped(3.0, mappings) == ("many", None)
    assert dp.mapped(0.0, mappings) is None
    assert dp.color("#123456") == "#123456"
    assert dp.color("rgba(0, 211, 255, 1)") == "#00d3ff"


def test_y_limits_start_at_zero_and_give_a_flat_zero_line_room() -> None:
    assert dp.y_limits([0.0, 0.0]) == (0.0, 1.0)
    assert dp.y_limits([0.0, 3.0, math.nan]) == (0.0, None)
    assert dp.y_limits([-1.0, 3.0]) == (None, None)
    assert dp.y_limits([math.nan]) == (None, None)


def test_gaps_break_lines_and_lone_points_are_found() -> None:
    pts = [(0.0, 1.0), (15.0, 2.0), (60.0, 3.0), (75.0, 4.0), (120.0, 5.0)]
    gapped = dp.with_gaps(pts, 15)
    assert [t for t, _ in gapped] == [0, 15, 30, 60, 75, 90, 120]
    assert math.isnan(gapped[2][1]) and math.isnan(gapped[5][1])
    assert dp.isolated_points(gapped) == [6]


def test_table_rows_put_alertname_first_and_drop_excluded_fields() -> None:
    cols, rows = dp.table_rows(
        [
            {"__name__": "ALERTS", "severity": "page", "alertname": "B", "job": "j"},
            {"__name__": "ALERTS", "alertname": "A", "severity": "warning"},
        ],
        exclude=["job"],
    )
    assert cols == ["alertname", "severity"]
    assert rows == [["A", "warning"], ["B", "page"]]
    starts = dp.column_starts([9, 40, 4])
    assert starts[0] == 0.01 and starts[1] < starts[2] < 0.99
    assert starts[2] - starts[1] > starts[1] - starts[0]


def test_slug_of_titles() -> None:
    assert dp.slug("fleetpulse / Fleet operations") == "fleet-operations"
    assert dp.slug("fleetpulse / Overview") == "overview"
    assert dp.slug("???") == "dashboard"


# --- queries and drawing against a stub Prometheus (httpx.MockTransport, no network) ----------


def stub_prometheus(seen: list[httpx.Request]) -> httpx.Client:
    """Answers `up`-like queries with one series, an unknown metric with nothing, and
    `bad(` with Prometheus' error body."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        q = request.url.params["query"]
        if q.startswith("bad("):
            return httpx.Response(
                400, json={"status": "error", "errorType": "bad_data", "error": "parse error"}
            )
        if "nothing" in q:
            result: list[dict[str, Any]] = []
        elif request.url.path.endswith("query_range"):
            start, end = float(request.url.params["start"]), float(request.url.params["end"])
            step = float(request.url.params["step"])
            n = int((end - start) // step) + 1
            result = [
                {"metric": {"job": "a"}, "values": [[start + i * step, str(i)] for i in range(n)]}
            ]
        else:
            result = [{"metric": {"job": "a"}, "value": [float(request.url.params["time"]), "7"]}]
        kind = "matrix" if request.url.path.endswith("query_range") else "vector"
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": kind, "result": result}}
        )

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_fetch_panel_substitutes_and_names_series() -> None:
    seen: list[httpx.Request] = []
    prom = dp.Prometheus("http://prom:9090/", stub_prometheus(seen))
    window = dp.Window(1000.0, 1720.0, 15.0)
    panel = {
        "type": "timeseries",
        "targets": [
            {"expr": 'rate(up{r=~"$region"}[$__rate_interval])', "legendFormat": "{{job}} up"},
            {"expr": "nothing", "legendFormat": "x"},
            {"expr": "bad(", "refId": "C"},
            {"expr": "hidden", "hide": True},
        ],
    }
    data = dp.fetch_panel(prom, panel, {"region": ".*", "__rate_interval": "1m"}, window)
    assert [s.name for s in data.series] == ["a up"]
    assert len(data.series[0].points) == 49
    assert data.errors == ["C: parse error"]
    assert seen[0].url.params["query"] == 'rate(up{r=~".*"}[1m])'
    assert seen[0].url.path == "/api/v1/query_range"
    assert len(seen) == 3  # the hidden target is not asked
    stat = {"type": "stat", "options": {"graphMode": "none"}, "targets": [{"expr": "up"}]}
    data = dp.fetch_panel(prom, stat, {}, window)
    assert data.series[0].last == 7 and not data.sparkline
    assert seen[-1].url.path == "/api/v1/query"
    assert seen[-1].url.params["time"] == "1720.000"


def test_render_writes_a_png_with_no_data_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    d = board("fleetpulse-overview.json")
    cells = dp.layout(dp.flatten_panels(d))
    window = dp.Window(1000.0, 1720.0, 15.0)
    prom = dp.Prometheus("http://prom", stub_prometheus([]))
    data = {
        i: dp.fetch_panel(prom, c.panel, {"__rate_interval": "1m"}, window)
        for i, c in enumerate(cells)
        if dp.query_kind(str(c.panel.get("type")))
    }
    data[1] = dp.PanelData([], [])  # a panel whose query returned nothing
    out = tmp_path / "overview.png"
    dp.render_dashboard(d, cells, data, window, {}, out, dpi=40)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_refuses_bad_config_naming_the_option(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(dp.main, ["--prometheus", "prom:9090"])
    assert res.exit_code != 0 and "--prometheus" in res.output
    res = runner.invoke(dp.main, ["--minutes", "0"])
    assert res.exit_code != 0 and "--minutes" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = runner.invoke(dp.main, ["--dashboard", str(bad), "--prometheus", "http://127.0.0.1:9"])
    assert res.exit_code != 0 and "--dashboard" in res.output
    res = runner.invoke(dp.main, ["--var", "novalue", "--prometheus", "http://127.0.0.1:9"])
    assert res.exit_code != 0 and "--var" in res.output
