"""Label matchers (pure), as in Prometheus Alertmanager: equality (``match``), anchored regular
expressions (``match_re``), and the modern ``matchers:`` strings (``severity="critical"``,
``class=~"shipment_.*"``, ``group!="WEST"``, ``{a="1", b!~"x|y"}``). A label that is absent
matches as the empty string.

Values may be double-quoted with Alertmanager's escapes (``\\"``, ``\\\\``, ``\\n``); an unquoted
value runs to the end of a single matcher (``Matcher.parse``) or to the next comma in a list
(``parse_matchers``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


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

    @property
    def op(self) -> str:
        return {(False, False): "=", (False, True): "!=", (True, False): "=~", (True, True): "!~"}[
            (self.regex, self.negate)
        ]

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def quoted(self) -> str:
        """Alertmanager's form, ``name=~"value"`` (escaped): parses back to this matcher."""
        return f"{self.name}{self.op}{quote(self.value)}"

    def to_api(self) -> dict[str, Any]:
        """Alertmanager API v2 ``matcher`` object."""
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.regex,
            "isEqual": not self.negate,
        }

    @staticmethod
    def from_api(obj: Any) -> Matcher:
        """An API v2 ``matcher`` object (``isEqual`` defaults to true)."""
        if not isinstance(obj, dict):
            raise ValueError("a matcher must be an object with name, value, isRegex")
        name, value = obj.get("name"), obj.get("value")
        is_regex, is_equal = obj.get("isRegex", False), obj.get("isEqual", True)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
            raise ValueError(f"matcher name {name!r} is not a label name")
        if not isinstance(value, str):
            raise ValueError(f"matcher {name}: value must be a string")
        if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
            raise ValueError(f"matcher {name}: isRegex and isEqual must be booleans")
        try:
            return Matcher(name, value, regex=is_regex, negate=not is_equal)
        except re.error as exc:
            raise ValueError(f"matcher {name}: bad regular expression {value!r}: {exc}") from None

    @staticmethod
    def parse(text: str) -> Matcher:
        """One matcher: ``class=truck_offline``, ``group!="WEST"``, ``class=~truck_.*``,
        ``severity!~'info'``. An unquoted value is the rest of the text."""
        m = _NAME.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a matcher (label=value, !=, =~ or !~)")
        rest = text[m.end() :].rstrip()
        if rest.startswith('"'):
            value, end = _unquote(text, m.end())
            if text[end:].strip():
                raise ValueError(f"{text!r}: unexpected text after the quoted value")
        elif len(rest) >= 2 and rest[0] == rest[-1] == "'":
            value = rest[1:-1]
        else:
            value = rest
        return _make(m.group(1), m.group(2), value, text)


def _make(name: str, op: str, value: str, text: str) -> Matcher:
    try:
        return Matcher(name, value, regex="~" in op, negate=op.startswith("!"))
    except re.error as exc:
        raise ValueError(f"{text!r}: bad regular expression: {exc}") from None


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _unquote(text: str, start: int) -> tuple[str, int]:
    """The double-quoted string starting at ``text[start]``; returns (value, index after)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in _ESCAPES:
                raise ValueError(f'{text!r}: bad escape at character {i + 1} (use \\" \\\\ \\n)')
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise ValueError(f"{text!r}: unterminated quoted value")


def parse_matchers(text: str) -> list[Matcher]:
    """Alertmanager's matcher list: ``a="1", b=~"x|y"``, optionally in braces. An unquoted
    value ends at the next comma. Raises ``ValueError`` saying what is wrong."""
    s = text.strip()
    if s.startswith("{"):
        if not s.endswith("}"):
            raise ValueError(f"{text!r}: missing closing brace")
        s = s[1:-1]
    out: list[Matcher] = []
    pos = 0
    while pos < len(s):
        if not s[pos:].strip():
            break
        m = _NAME.match(s, pos)
        if not m:
            raise ValueError(
                f'{text!r} is not a matcher list (label="value", !=, =~ or !~, comma-separated)'
            )
        pos = m.end()
        if pos < len(s) and s[pos] == '"':
            value, pos = _unquote(s, pos)
            tail = s[pos:]
            stripped = tail.lstrip()
            pos += len(tail) - len(stripped)
            if stripped and not stripped.startswith(","):
                raise ValueError(f"{text!r}: expected a comma after {s[m.start() : pos].strip()!r}")
        else:
            comma = s.find(",", pos)
            end = len(s) if comma < 0 else comma
            value = s[pos:end].strip()
            pos = end
        out.append(_make(m.group(1), m.group(2), value, text))
        if pos < len(s) and s[pos] == ",":
            pos += 1
    if not out:
        raise ValueError(f"{text!r}: no matcher")
    return out


def from_maps(match: Mapping[str, str], match_re: Mapping[str, str]) -> tuple[Matcher, ...]:
    return tuple(Matcher(k, v) for k, v in match.items()) + tuple(
        Matcher(k, v, regex=True) for k, v in match_re.items()
    )


def all_match(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
