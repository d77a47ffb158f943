"""The Grafana dashboards (deploy/grafana/dashboards) are well-formed and read only metrics that
exist.

Each dashboard is importable by hand and provisionable: the classic JSON model, one schema
version, its Prometheus data source a `DS_PROMETHEUS` variable. Every panel has queries; every
metric name a query (or a variable's ``label_values``) reads is in
deploy/prometheus/metric-catalogue.yml or is a recording rule's, and its label matchers name
labels the family has. The catalogue is checked in turn against the families the dispatcher,
the gateway and the exporter register. With promtool installed, every query is parsed by
Prometheus' own parser. (A live check against a running stack is separate.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
CATALOGUE = ROOT / "deploy" / "prometheus" / "metric-catalogue.yml"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
SCHEMA_VERSION = 42  # the last classic-model version (Grafana 12.2 and later)
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
NO_QUERY_PANELS = {"row", "text"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# -- PromQL, roughly --------------------------------------------------------------------------

KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "atan2",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*")
_SELECTOR = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")


def grafana_variables(expr: str) -> set[str]:
    return set(_VARIABLE.findall(expr))


def _plain(expr: str) -> str:
    """The expression with Grafana variables made PromQL and strings emptied."""
    expr = _VARIABLE.sub(lambda m: "1m" if m.group(1).startswith("__") else "x", expr)
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers not followed by ``(`` (functions,
    aggregations) that are no keyword, outside label matchers, ranges and label lists."""
    text = re.sub(r"\{[^}]*\}", " ", _plain(expr))
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for m in _NAME.finditer(text):
        if text[m.end() :].lstrip().startswith("("):
            continue
        if m.group(0).lower() not in KEYWORDS:
            names.add(m.group(0))
    return names


def matched_labels(expr: str) -> dict[str, set[str]]:
    """For each metric selector with matchers, ``name{...}``, the label names it matches on."""
    out: dict[str, set[str]] = {}
    for m in _SELECTOR.finditer(_plain(expr)):
        out.setdefault(m.group(1), set()).update(_MATCHER.findall(m.group(2)))
    return out


def test_the_promql_reader_finds_names_and_labels() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, receiver) (rate(x_bucket{receiver=~"$r", '
        'instance="a:1"}[$__rate_interval]))) / on (job) group_left (instance) y offset 10m '
        "or vector(0) and a:b:c > bool 1e3"
    )
    assert metric_names(expr) == {"x_bucket", "y", "a:b:c"}
    assert matched_labels(expr) == {"x_bucket": {"receiver", "instance"}}
    assert metric_names('label_replace(up, "dst", "$1", "src", "(.+)")') == {"up"}


# -- what is known ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    name: str
    component: str
    type: str
    labels: frozenset[str] | None  # None: any


@cache
def catalogue() -> dict[str, Family]:
    doc = yaml.safe_load(CATALOGUE.read_text())
    out: dict[str, Family] = {}
    for component, spec in doc["components"].items():
        for name, fam in spec["families"].items():
            assert name not in out, f"{name} is catalogued twice"
            labels = fam["labels"]
            out[name] = Family(
                name, component, fam["type"], None if labels == "any" else frozenset(labels)
            )
    return out


@cache
def recorded() -> dict[str, Family]:
    """The recording rules' series: labels from their outer ``by (...)``."""
    out = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    by = re.search(r"\bby\s*\(([^)]*)\)", rule["expr"])
                    labels = frozenset(x.strip() for x in by.group(1).split(",")) if by else None
                    out[rule["record"]] = Family(rule["record"], "recording", "gauge", labels)
    return out


def family_of(series: str) -> Family | None:
    known = catalogue() | recorded()
    if series in known:
        return known[series]
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and base in known and known[base].type == "histogram":
            return known[base]
    return None


# -- the dashboards -----------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row's


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target.get('refId')}", target.get("expr", "")
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q)
            assert m, f"variable {var['name']}: {q!r} is not label_values(SELECTOR, LABEL)"
            selector, label = m.groups()
            yield f"variable {var['name']}", f"{selector.strip()}"
            # the label asked for must be one the selected family has
            for name in metric_names(selector):
                fam = family_of(name)
                if fam is not None and fam.labels is not None:
                    assert label in fam.labels | TARGET_LABELS, (
                        f"variable {var['name']}: {name} has no label {label!r}"
                    )


def test_there_are_the_five_dashboards() -> None:
    uids = {load(p)["uid"] for p in DASHBOARDS}
    assert uids == {
        "fleetpulse-overview",
        "fleetpulse-flink-job",
        "fleetpulse-dispatcher",
        "fleetpulse-gateway",
        "fleetpulse-operations",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_structure(path: Path) -> None:
    d = load(path)
    assert d["uid"] == path.stem
    assert d["title"].startswith("fleetpulse / ")
    assert d["schemaVersion"] == SCHEMA_VERSION
    assert d.get("id") is None, "an exported id would clash on import"
    assert "fleetpulse" in d["tags"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get("DS_PROMETHEUS")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus"

    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in panels(d):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] in NO_QUERY_PANELS:
            continue
        assert panel.get("title") and panel.get("description"), panel
        assert panel["datasource"] == DATASOURCE, panel["title"]
        targets = panel.get("targets") or []
        assert targets, f"panel {panel['title']!r} has no queries"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), panel["title"]
        for t in targets:
            assert t.get("expr", "").strip(), f"panel {panel['title']!r} {t['refId']}: no expr"
            assert t["datasource"] == DATASOURCE, panel["title"]
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_queries_use_defined_variables(path: Path) -> None:
    d = load(path)
    defined = {v["name"] for v in d["templating"]["list"]} | GRAFANA_VARIABLES
    for where, expr in queries(d):
        unknown = grafana_variables(expr) - defined
        assert not unknown, f"{path.stem}: {where} uses undefined ${unknown}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_metric_a_dashboard_reads_is_catalogued(path: Path) -> None:
    d = load(path)
    for where, expr in queries(d):
        names = metric_names(expr)
        assert names, f"{path.stem}: {where} reads no metric: {expr}"
        for name in names:
            assert family_of(name) is not None, (
                f"{path.stem}: {where} reads {name}, which is neither in "
                "deploy/prometheus/metric-catalogue.yml nor a recording rule"
            )
        for name, labels in matched_labels(expr).items():
            fam = family_of(name)
            if fam is None or fam.labels is None:
                continue
            unknown = labels - fam.labels - TARGET_LABELS
            assert not unknown, f"{path.stem}: {where}: {name} has no label(s) {unknown}"


def test_every_metric_the_rules_read_is_catalogued() -> None:
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                where = f"{path.name} {rule.get('alert') or rule.get('record')}"
                for name in metric_names(rule["expr"]):
                    assert family_of(name) is not None, f"{where} reads uncatalogued {name}"
                for name, labels in matched_labels(rule["expr"]).items():
                    fam = family_of(name)
                    if fam is not None and fam.labels is not None:
                        assert not labels - fam.labels - TARGET_LABELS, (where, name, labels)


def test_every_query_parses(tmp_path: Path) -> None:
    """Prometheus' own parser, through promtool: each query becomes a recording rule."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (./dev.sh setup installs Debian's prometheus)")
    rules = []
    for path in DASHBOARDS:
        for i, (_, expr) in enumerate(queries(load(path))):
            plain = _VARIABLE.sub(lambda m: "1m" if m.group(1).startswith("__") else ".*", expr)
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{i}", "expr": plain})
    rule_file = tmp_path / "dashboards.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run(
        [promtool, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the catalogue against the code -------------------------------------------------------------


def exposed_names(registry: CollectorRegistry) -> dict[str, str]:
    """Family name as Prometheus stores it -> type, for a prometheus_client registry."""
    out = {}
    for metric in registry.collect():
        name = metric.name + "_total" if metric.type == "counter" else metric.name
        out[name] = metric.type
    return out


def catalogued(component: str) -> dict[str, str]:
    return {f.name: f.type for f in catalogue().values() if f.component == component}


def without_process(names: dict[str, str]) -> dict[str, str]:
    process = catalogued("python-process")
    return {
        n: t
        for n, t in names.items()
        if n not in process and not n.startswith(("process_", "python_"))
    }


def test_dispatcher_families_are_catalogued() -> None:
    from alerting.metrics import Metrics

    assert without_process(exposed_names(Metrics(CollectorRegistry()).registry)) == catalogued(
        "dispatcher"
    )


def test_gateway_families_are_catalogued() -> None:
    from ws_gateway.metrics import GatewayMetrics

    registry = CollectorRegistry()
    GatewayMetrics(registry)
    assert without_process(exposed_names(registry)) == catalogued("gateway")


def test_exporter_gauges_are_catalogued() -> None:
    from fleetpulse.exporter.families import families
    from fleetpulse.exporter.readings import Readings

    gauges = {m.name: m.type for m in families(Readings())}
    assert gauges == {n: t for n, t in catalogued("exporter").items() if t == "gauge"}
