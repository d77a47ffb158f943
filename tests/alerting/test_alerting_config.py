from __future__ import annotations

from pathlib import Path

import pytest

from alerting import ConfigError
from alerting.config import default_config_path, load_config, parse_config, parse_duration_ms

pytestmark = pytest.mark.unit

GOOD = """
receivers:
  - name: pd
    type: pagerduty
    routing_key: ${PD_KEY}
  - name: hook
    type: webhook
    url: ${HOOK_URL:-http://127.0.0.1:9/x}
    secret: s3cret
    headers: {X-Team: ops}
    timeout: 2s
route:
  receiver: hook
  group_wait: 50ms
  routes:
    - match: {class: truck_offline}
      receiver: pd
      continue: true
inhibit_rules:
  - source_match: {class: truck_offline}
    target_match: {class: truck_stopped_unplanned}
    equal: [truck_id]
"""


def test_default_config_is_valid_and_routes_every_contract_class() -> None:
    cfg = load_config(default_config_path(), env={})
    classes = {r.match.get("class") for r in cfg.route.routes}
    assert classes >= {
        "shipment_late",
        "shipment_at_risk",
        "shipment_stuck_at_hub",
        "shipment_no_scan",
        "delivery_attempts_failed",
        "truck_offline",
        "truck_stopped_unplanned",
    }
    assert cfg.receivers[0].type == "webhook"
    assert cfg.receivers[0].url == "http://127.0.0.1:9099/alerts"


def test_env_interpolation_and_defaults() -> None:
    cfg = parse_config(GOOD, "a.yaml", env={"PD_KEY": "k" * 32})
    assert cfg.receiver("pd").routing_key == "k" * 32
    assert cfg.receiver("pd").endpoint == "https://events.pagerduty.com/v2/enqueue"
    assert cfg.receiver("hook").url == "http://127.0.0.1:9/x"
    assert cfg.receiver("hook").timeout_ms == 2000
    assert cfg.route.group_wait_ms == 50
    assert cfg.route.routes[0].continue_ is True


def test_missing_env_var_names_file_field_and_variable() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(GOOD, "a.yaml", env={})
    assert "a.yaml" in str(e.value)
    assert "receivers[0].routing_key" in str(e.value)
    assert "PD_KEY" in str(e.value)


@pytest.mark.parametrize(
    ("old", "new", "field", "what"),
    [
        ("timeout: 2s", "timeout: soon", "receivers[1].timeout", "not a duration"),
        ("type: webhook", "type: slack", "receivers[1].type", "pagerduty"),
        ("receiver: pd", "receiver: nobody", "route.routes[0].receiver", "unknown receiver"),
        ("secret: s3cret", "secrett: x", "receivers[1].secrett", "Extra inputs"),
        ("url: ${HOOK_URL:-http://127.0.0.1:9/x}", "url: ftp://x", "receivers[1].url", "http"),
        ("equal: [truck_id]", "equal: truck_id", "inhibit_rules[0].equal", "list"),
    ],
)
def test_errors_name_file_field_and_problem(old: str, new: str, field: str, what: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(GOOD.replace(old, new), "conf/alerts.yaml", env={"PD_KEY": "k"})
    msg = str(e.value)
    assert msg.startswith("conf/alerts.yaml: ")
    assert field in msg
    assert what in msg


def test_pagerduty_needs_routing_key_and_webhook_needs_secret() -> None:
    text = GOOD.replace("    routing_key: ${PD_KEY}\n", "").replace("    secret: s3cret\n", "")
    with pytest.raises(ConfigError) as e:
        parse_config(text, "x.yaml", env={})
    assert "receivers[0].routing_key: required" in str(e.value)
    assert "receivers[1].secret: required" in str(e.value)


def test_bad_regex_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"route.routes\[0\].match_re.*bad regular"):
        parse_config(
            GOOD.replace("match: {class: truck_offline}", "match_re: {class: '('}"),
            "x.yaml",
            env={"PD_KEY": "k"},
        )
    p = tmp_path / "broken.yaml"
    p.write_text("receivers: [\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="missing.yaml: cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_durations() -> None:
    assert parse_duration_ms("250ms") == 250
    assert parse_duration_ms("1h30m") == 5_400_000
    assert parse_duration_ms(2) == 2000
    assert parse_duration_ms("0.5s") == 500
    for bad in ("", "5 minutes", "-1s", True):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)
