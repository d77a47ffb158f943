"""Label matchers (pure): equality (``match``) and anchored regular expressions (``match_re``),
as in Prometheus Alertmanager. A label that is absent matches as the empty string."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    regex: bool = False
    negate: bool = False

    def __post_init__(self) -> None:
        if self.regex:
            re.compile(self.value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        ok = re.fullmatch(self.value, actual) is not None if self.regex else actual == self.value
        return ok != self.negate

    def __str__(self) -> str:
        op = {(False, False): "=", (False, True): "!=", (True, False): "=~", (True, True): "!~"}[
            (self.regex, self.negate)
        ]
        return f"{self.name}{op}{self.value}"

    @staticmethod
    def parse(text: str) -> Matcher:
        """``class=truck_offline``, ``group!=WEST``, ``class=~truck_.*``, ``severity!~info``."""
        m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", text)
        if not m:
            raise ValueError(f"{text!r} is not a matcher (label=value, !=, =~ or !~)")
        name, op, value = m.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        try:
            return Matcher(name, value, regex="~" in op, negate=op.startswith("!"))
        except re.error as exc:
            raise ValueError(f"{text!r}: bad regular expression: {exc}") from None


def from_maps(match: Mapping[str, str], match_re: Mapping[str, str]) -> tuple[Matcher, ...]:
    return tuple(Matcher(k, v) for k, v in match.items()) + tuple(
        Matcher(k, v, regex=True) for k, v in match_re.items()
    )


def all_match(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
