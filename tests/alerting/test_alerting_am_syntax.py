"""Alertmanager syntax (issue 30): ``matchers:`` in routes and inhibit rules beside
``match``/``match_re``, quoted matchers in silences, ``alerts routes test``, ``alerts query``,
and the state directory under ``FLEETPULSE_DATA_DIR``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from alerting import ConfigError, routing
from alerting.cli import alerts
from alerting.config import parse_config
from alerting.engine import Engine
from alerting.matchers import Matcher, parse_matchers
from alerting.records import Alert, decode
from alerting.store import Store

pytestmark = pytest.mark.unit

CONFIG = """
receivers:
  - {name: hook, type: webhook, url: "http://127.0.0.1:9/x", secret: s}
  - {name: pager, type: webhook, url: "http://127.0.0.1:9/p", secret: s}
  - {name: shipments, type: webhook, url: "http://127.0.0.1:9/s", secret: s}
route:
  receiver: hook
  group_wait: 0s
  routes:
    - matchers: ['severity="critical"', 'group!="WEST"']
      receiver: pager
      continue: true
    - matchers: ['class=~"shipment_.*"']
      receiver: shipments
inhibit_rules:
  - source_matchers: ['class="truck_offline"']
    target_matchers: ['class="truck_stopped_unplanned"']
    equal: [truck_id]
"""


def alert(cls: str, subject: str = "T1", severity: str = "error", group: str = "WEST") -> Alert:
    doc = {
        "event_action": "trigger",
        "dedup_key": f"{cls}:{subject}",
        "payload": {
            "summary": f"{cls} {subject}",
            "source": "test",
            "severity": severity,
            "timestamp": "2026-11-25T20:10:00.000Z",
            "group": group,
            "custom_details": {"truck_id": subject},
        },
    }
    a = decode(orjson.dumps(doc), 1000)
    assert isinstance(a, Alert)
    return a


def test_matcher_lists_parse_quotes_escapes_braces_and_unquoted_values() -> None:
    got = parse_matchers('{severity="critical", class=~"shipment_.*",group!=WEST}')
    assert [(m.name, m.op, m.value) for m in got] == [
        ("severity", "=", "critical"),
        ("class", "=~", "shipment_.*"),
        ("group", "!=", "WEST"),
    ]
    m = Matcher.parse(r'note="say \"hi\"\\now"')
    assert m.value == 'say "hi"\\now' and Matcher.parse(m.quoted()) == m
    assert Matcher.parse("class=~a{1,2}").value == "a{1,2}"  # unquoted: the rest of the text
    for bad, why in [
        ('a="x', "unterminated"),
        ('a="x" y', "expected a comma"),
        ('a="\\q"', "bad escape"),
        ("{a=b", "closing brace"),
        ("nope", "is not a matcher"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_matchers(bad)


def test_routes_with_matchers_route_like_match_and_match_re() -> None:
    root = routing.build(parse_config(CONFIG, "am.yaml").route)
    # continue: the next sibling is tried; none matches, and a match stops the fall-back
    assert [r.receiver for r in routing.match(root, {"severity": "critical", "group": "EAST"})] == [
        "pager"
    ]
    assert [r.receiver for r in routing.match(root, {"severity": "critical", "group": "WEST"})] == [
        "hook"
    ]
    both = routing.match(root, {"severity": "critical", "class": "shipment_late", "group": "N"})
    assert [r.receiver for r in both] == ["pager", "shipments"]
    legacy = parse_config(
        CONFIG.replace(
            """- matchers: ['class=~"shipment_.*"']""", """- match_re: {class: "shipment_.*"}"""
        ),
        "legacy.yaml",
    )
    assert routing.match(routing.build(legacy.route), {"class": "shipment_late"})[0].receiver == (
        "shipments"
    )


@pytest.mark.parametrize(
    "old,new,where",
    [
        ('"group!=\\"WEST\\""', '"group!=\\"WEST"', "route.routes[0].matchers[1]"),
        ("'class=~\"shipment_.*\"'", "'class=~\"(\"'", "route.routes[1].matchers[0]"),
        (
            "target_matchers: ['class=\"truck_stopped_unplanned\"']",
            "target_matchers: ['no operator']",
            "inhibit_rules[0].target_matchers[0]",
        ),
        ("  group_wait: 0s", "  group_wait: 0s\n  matchers: ['a=\"b\"']", "route.matchers"),
    ],
)
def test_matcher_errors_name_file_and_field_path(old: str, new: str, where: str) -> None:
    text = CONFIG.replace("'group!=\"WEST\"'", '"group!=\\"WEST\\""')
    assert old in text
    with pytest.raises(ConfigError) as err:
        parse_config(text.replace(old, new), "am.yaml")
    assert f"am.yaml: {where}" in str(err.value)


def test_inhibit_rules_with_source_and_target_matchers() -> None:
    engine = Engine(parse_config(CONFIG, "am.yaml"))
    engine.ingest(alert("truck_offline", "T5"), 0)
    engine.ingest(alert("truck_stopped_unplanned", "T5"), 0)
    engine.ingest(alert("truck_stopped_unplanned", "T6"), 0)
    notes, dropped = engine.flush_due(1)
    assert {n.dedup_key for n in notes} == {"truck_offline:T5", "truck_stopped_unplanned:T6"}
    assert [(d.dedup_key, d.reason) for d in dropped] == [
        ("truck_stopped_unplanned:T5", "inhibited")
    ]


def test_alertname_label_is_the_class() -> None:
    assert alert("truck_offline").labels["alertname"] == "truck_offline"


def test_silence_cli_accepts_quoted_matchers_and_they_apply(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    res = CliRunner().invoke(
        alerts, ["silence", "add", 'class=~"truck_.*"', 'group!="WEST"', "--state-dir", state]
    )
    assert res.exit_code == 0, res.output
    store = Store(state)
    try:
        (s,) = store.silences()
        assert [m.quoted() for m in s.matchers] == ['class=~"truck_.*"', 'group!="WEST"']
        assert s.mutes(alert("truck_offline", group="EAST").labels, s.starts_ms)
        assert not s.mutes(alert("truck_offline", group="WEST").labels, s.starts_ms)
    finally:
        store.close()


def test_routes_test_prints_receivers_and_route_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "am.yaml"
    cfg.write_text(CONFIG)
    runner = CliRunner()
    res = runner.invoke(
        alerts, ["routes", "test", "--config", str(cfg), "severity=critical", "class=shipment_late"]
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "pager,shipments"
    assert 'pager\troute.routes[0] {severity="critical", group!="WEST"}' in lines[1]
    assert 'shipments\troute.routes[1] {class=~"shipment_.*"}' in lines[2]
    res = runner.invoke(alerts, ["routes", "test", "--config", str(cfg), "class=truck_offline"])
    assert res.exit_code == 0 and res.output.splitlines() == ["hook", "  hook\troute"]
    res = runner.invoke(
        alerts, ["routes", "test", "--config", str(cfg), "class=x", "--verify-receivers", "pager"]
    )
    assert res.exit_code == 1 and "expected receivers pager, got hook" in res.output
    res = runner.invoke(alerts, ["routes", "test", "--config", str(cfg), "novalue"])
    assert res.exit_code == 2 and "expected LABEL=VALUE" in res.output


def seed(state: str, cfg_text: str, *alerts_: Alert) -> None:
    """Committed state of a dispatcher that consumed ``alerts_`` and flushed its groups."""
    store = Store(state)
    try:
        engine = Engine(parse_config(cfg_text, "am.yaml"), store.load_engine_state())
        for a in alerts_:
            engine.ingest(a, 1000)
        notes, _ = engine.flush_due(2000)
        store.commit_batch(engine.state, notes, 2000)
    finally:
        store.close()


def test_query_lists_firing_alerts_with_state_receivers_and_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETPULSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # not where the state is
    cfg = tmp_path / "am.yaml"
    cfg.write_text(CONFIG)
    seed(
        str(tmp_path / "data" / "alerting"),
        CONFIG,
        alert("truck_offline", "T5", severity="critical", group="EAST"),
        alert("truck_stopped_unplanned", "T5"),
        alert("shipment_late", "S1"),
    )
    runner = CliRunner()
    res = runner.invoke(alerts, ["query", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    rows = {line.split("\t")[0]: line.split("\t") for line in res.output.splitlines()}
    assert rows["truck_offline:T5"][1:] == [
        "truck_offline",
        "critical",
        "active",
        "pager",
        "2026-11-25T20:10:00Z",
    ]
    assert rows["truck_stopped_unplanned:T5"][3:5] == ["suppressed (inhibited)", "[hook]"]
    assert rows["shipment_late:S1"][4] == "shipments"
    res = runner.invoke(
        alerts, ["query", "--config", str(cfg), 'class=~"truck_.*"', "--no-inhibited"]
    )
    assert [line.split("\t")[0] for line in res.output.splitlines()] == ["truck_offline:T5"]
    res = runner.invoke(alerts, ["query", "--config", str(cfg), 'class="'])
    assert res.exit_code == 2 and "unterminated" in res.output


def test_state_dir_defaults_to_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A silence added from one working directory applies to a dispatcher started elsewhere."""
    monkeypatch.setenv("FLEETPULSE_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    runner = CliRunner()
    res = runner.invoke(alerts, ["silence", "add", "class=truck_offline"])
    assert res.exit_code == 0, res.output
    sid = res.output.strip()
    assert (tmp_path / "data" / "alerting" / "alerting.db").exists()
    assert not (tmp_path / "a" / ".fleetpulse").exists()
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(alerts, ["silence", "list"])
    assert res.output.startswith(f"{sid}\tactive\t") and "class=truck_offline" in res.output
    assert "$FLEETPULSE_DATA_DIR/alerting" in runner.invoke(alerts, ["run", "--help"]).output
