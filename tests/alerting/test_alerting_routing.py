from __future__ import annotations

import pytest

from alerting import routing
from alerting.config import parse_config
from alerting.matchers import Matcher

pytestmark = pytest.mark.unit

CFG = """
receivers:
  - {name: default, type: webhook, url: "http://h/d", secret: s}
  - {name: trucks, type: webhook, url: "http://h/t", secret: s}
  - {name: pager, type: webhook, url: "http://h/p", secret: s}
  - {name: west, type: webhook, url: "http://h/w", secret: s}
route:
  receiver: default
  group_by: [group]
  group_wait: 1s
  routes:
    - match_re: {severity: "critical|error"}
      receiver: pager
      continue: true
      repeat_interval: 1m
    - match: {class: truck_offline}
      receiver: trucks
      group_wait: 2s
      routes:
        - match: {group: WEST}
          receiver: west
    - match_re: {class: "truck_.*"}
      receiver: trucks
"""


def routes_for(**labels: str) -> list[tuple[str, str]]:
    root = routing.build(parse_config(CFG, "r.yaml").route)
    return [(r.path, r.receiver) for r in routing.match(root, labels)]


def test_first_match_wins_and_continue_goes_on() -> None:
    assert routes_for(**{"class": "truck_offline", "severity": "warning", "group": "SOUTH"}) == [
        ("0.1", "trucks")
    ]
    assert routes_for(**{"class": "truck_offline", "severity": "error", "group": "WEST"}) == [
        ("0.0", "pager"),
        ("0.1.0", "west"),
    ]
    assert routes_for(**{"class": "truck_stopped_unplanned", "severity": "info"}) == [
        ("0.2", "trucks")
    ]
    assert routes_for(**{"class": "shipment_late", "severity": "info"}) == [("0", "default")]


def test_settings_are_inherited() -> None:
    root = routing.build(parse_config(CFG, "r.yaml").route)
    idx = routing.index(root)
    assert idx["0.1.0"].group_wait_ms == 2000  # from its parent
    assert idx["0.1.0"].group_by == ("group",)  # from the root
    assert idx["0.0"].repeat_interval_ms == 60_000
    assert idx["0.2"].repeat_interval_ms == routing.DEFAULT_REPEAT_INTERVAL_MS
    key = idx["0.1"].group_key({"group": "WEST", "class": "x"})
    assert key == "0.1|trucks|group=WEST"


def test_matcher_parse() -> None:
    assert Matcher.parse("class=truck_offline").matches({"class": "truck_offline"})
    assert Matcher.parse("group!=WEST").matches({"group": "SOUTH"})
    assert Matcher.parse("class=~truck_.*").matches({"class": "truck_stopped_unplanned"})
    assert not Matcher.parse("class=~truck").matches({"class": "truck_offline"})  # anchored
    assert Matcher.parse("severity!~info|warning").matches({"severity": "critical"})
    assert Matcher.parse("missing=").matches({})
    with pytest.raises(ValueError):
        Matcher.parse("no operator")
    with pytest.raises(ValueError):
        Matcher.parse("a=~(")
