"""The dispatcher configuration file (YAML): receivers, routing tree, grouping, repeat interval
and inhibition rules. Pure: ``parse_config(text, source=...)`` does no I/O; ``load_config`` reads
the file. Every error is a :class:`alerting.ConfigError` naming the file, the field path and what
is wrong, e.g. ``alerts.yaml: route.routes[1].receiver: unknown receiver 'pager'``.

``${VAR}`` and ``${VAR:-default}`` in string values are replaced from the environment (so no
secret is committed); ``$$`` is a literal ``$``. Durations are ``250ms``, ``30s``, ``5m``,
``4h``, ``1h30m`` or a number of seconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from alerting import ConfigError
from alerting.matchers import Matcher, from_maps, parse_matchers
from alerting.signature import standard_webhooks_key

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# the webhook secret of alerting/default_config.yaml when FLEETPULSE_WEBHOOK_SECRET is unset:
# public, so only `fleetpulse up` (which sets ALLOW_DEMO_SECRET_ENV) may sign with it
DEMO_SECRET = "fleetpulse-dev-secret"
ALLOW_DEMO_SECRET_ENV = "FLEETPULSE_ALLOW_DEMO_SECRET"


def parse_duration_ms(value: Any) -> int:
    """``"1h30m"`` -> 5400000; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 250ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("duration must not be negative")
        return int(round(value * 1000))
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s, 5m or 250ms")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (use e.g. 250ms, 30s, 5m, 4h, 1h30m)")
    return int(round(total))


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]


def format_duration_ms(ms: int) -> str:
    """The inverse of :func:`parse_duration_ms` for messages: 900000 -> ``"15m"``,
    5400000 -> ``"1h30m"``, 1500 -> ``"1s500ms"``, 0 -> ``"0s"``."""
    if ms <= 0:
        return "0s"
    out = ""
    for unit in ("d", "h", "m", "s", "ms"):
        n, ms = divmod(ms, _UNIT_MS[unit])
        if n:
            out += f"{n}{unit}"
    return out


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _check_map_url(v: str | None) -> str | None:
    if not v:
        return None  # "" (an unset ${VAR:-}) means no map link
    if not re.match(r"^https?://[^/\s]+", v):
        raise ValueError(f"{v!r} is not an http(s) URL")
    return v


class RetryConfig(_Model):
    """Retry budget: at most ``max_attempts`` tries and ``max_age`` since the alert was queued."""

    max_attempts: int = Field(8, ge=1, le=100)
    initial_backoff_ms: DurationMs = Field(500, alias="initial_backoff")
    max_backoff_ms: DurationMs = Field(60_000, alias="max_backoff")
    max_age_ms: DurationMs = Field(3_600_000, alias="max_age")


class BreakerConfig(_Model):
    """Open after ``failure_threshold`` consecutive failures; probe after ``reset_timeout``."""

    failure_threshold: int = Field(5, ge=1, le=1000)
    reset_timeout_ms: DurationMs = Field(30_000, alias="reset_timeout")


class ReceiverConfig(_Model):
    name: str
    type: Literal["pagerduty", "webhook"]
    url: str | None = None
    routing_key: str | None = None
    secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_ms: DurationMs = Field(5000, alias="timeout")
    max_in_flight: int = Field(8, ge=1, le=256)
    # stdlib http.client (default: about 3x less CPU per request, measured) or httpx
    http_client: Literal["stdlib", "httpx"] = "stdlib"
    # webhook signature headers: fleetpulse's or Standard Webhooks' (alerting/signature.py)
    signature: Literal["fleetpulse", "standard-webhooks"] = "fleetpulse"
    # base of the map link sent as client_url (a trigger's subject appended); global.map_url
    map_url: Annotated[str | None, AfterValidator(_check_map_url)] = None
    retry: RetryConfig = Field(default_factory=RetryConfig)  # type: ignore[arg-type]
    circuit_breaker: BreakerConfig = Field(default_factory=BreakerConfig)  # type: ignore[arg-type]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 1-64 characters of A-Z a-z 0-9 _ . -")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @field_validator("timeout_ms")
    @classmethod
    def _timeout(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be positive")
        return v

    @property
    def endpoint(self) -> str:
        return self.url or PAGERDUTY_EVENTS_URL


def _check_regexes(v: dict[str, str]) -> dict[str, str]:
    for label, pattern in v.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{label}: bad regular expression {pattern!r}: {exc}") from None
    return v


def _check_matchers(v: str) -> str:
    parse_matchers(v)  # ValueError says what is wrong; pydantic adds the field path
    return v


#: one item of Alertmanager's ``matchers:`` list, e.g. ``'class=~"shipment_.*"'``
MatcherText = Annotated[str, AfterValidator(_check_matchers)]


def all_matchers(
    match: Mapping[str, str], match_re: Mapping[str, str], matchers: list[str]
) -> tuple[Matcher, ...]:
    """The deprecated ``match``/``match_re`` maps and the modern ``matchers`` list, ANDed."""
    return from_maps(match, match_re) + tuple(m for t in matchers for m in parse_matchers(t))


class RouteConfig(_Model):
    receiver: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    matchers: list[MatcherText] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")
    group_by: list[str] | None = None
    group_wait_ms: DurationMs | None = Field(None, alias="group_wait")
    group_interval_ms: DurationMs | None = Field(None, alias="group_interval")
    repeat_interval_ms: DurationMs | None = Field(None, alias="repeat_interval")
    routes: list[RouteConfig] = Field(default_factory=list)

    _re = field_validator("match_re")(_check_regexes)

    def all_matchers(self) -> tuple[Matcher, ...]:
        return all_matchers(self.match, self.match_re, self.matchers)


class InhibitRule(_Model):
    """A firing alert matching ``source_*`` mutes alerts matching ``target_*`` whose ``equal``
    labels have the same values (e.g. ``truck_offline`` mutes ``truck_stopped_unplanned`` of the
    same ``truck_id``)."""

    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    source_matchers: list[MatcherText] = Field(default_factory=list)
    target_matchers: list[MatcherText] = Field(default_factory=list)
    equal: list[str] = Field(default_factory=list)

    _sre = field_validator("source_match_re")(_check_regexes)
    _tre = field_validator("target_match_re")(_check_regexes)

    def source(self) -> tuple[Matcher, ...]:
        return all_matchers(self.source_match, self.source_match_re, self.source_matchers)

    def target(self) -> tuple[Matcher, ...]:
        return all_matchers(self.target_match, self.target_match_re, self.target_matchers)


class GlobalConfig(_Model):
    """Settings of the whole dispatcher (Alertmanager's ``global``).

    ``resolve_timeout``: a firing alert whose source has not re-asserted it (sent its trigger
    or an acknowledge again) for this long is resolved by the dispatcher; the jobs re-send every
    open alert at least every ``--alert-refresh-s`` (default 300 s), so the default is three
    refreshes. ``0`` turns it off (for jobs run with ``--alert-refresh-s 0``)."""

    resolve_timeout_ms: DurationMs = Field(900_000, alias="resolve_timeout")
    # the live map's URL, for client_url links of receivers without their own map_url
    map_url: Annotated[str | None, AfterValidator(_check_map_url)] = None

    @field_validator("resolve_timeout_ms")
    @classmethod
    def _resolve_timeout(cls, v: int) -> int:
        if 0 < v < 1000:
            raise ValueError("must be 0 (off) or at least 1s")
        return v


class Config(_Model):
    # ``global`` is a Python keyword: the field is ``global_``, the YAML key ``global``
    global_: GlobalConfig = Field(
        default_factory=GlobalConfig,  # type: ignore[arg-type]
        alias="global",
    )
    receivers: list[ReceiverConfig] = Field(min_length=1)
    route: RouteConfig
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)

    def receiver(self, name: str) -> ReceiverConfig:
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(name)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def interpolate_env(data: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of ``data``.

    Raises ``ValueError("<path>: ...")`` for a variable that is unset and has no default."""
    if isinstance(data, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            value = env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise ValueError(
                        f"{path or '(top level)'}: environment variable {name} is not set "
                        f"(set it, or write ${{{name}:-default}})"
                    )
                return default
            return value

        return _ENV.sub(sub, data)
    if isinstance(data, dict):
        return {
            k: interpolate_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in data.items()
        }
    if isinstance(data, list):
        return [interpolate_env(v, env, f"{path}[{i}]") for i, v in enumerate(data)]
    return data


def _walk_routes(route: RouteConfig, path: str) -> list[tuple[str, RouteConfig]]:
    out = [(path, route)]
    for i, child in enumerate(route.routes):
        out.extend(_walk_routes(child, f"{path}.routes[{i}]"))
    return out


def parse_config(
    text: str, source: str = "<config>", env: Mapping[str, str] | None = None
) -> Config:
    """Parse and validate configuration text; ``source`` names the file in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: (top level): expected a mapping with receivers and route")
    try:
        raw = interpolate_env(raw, os.environ if env is None else env)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{source}: {_path(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(problems)) from None
    problems = []
    names = [r.name for r in cfg.receivers]
    for i, r in enumerate(cfg.receivers):
        if names.index(r.name) != i:
            problems.append(f"receivers[{i}].name: duplicate receiver name {r.name!r}")
        if r.type == "pagerduty" and not r.routing_key:
            problems.append(f"receivers[{i}].routing_key: required for a pagerduty receiver")
        if r.type == "webhook" and not r.url:
            problems.append(f"receivers[{i}].url: required for a webhook receiver")
        if r.type == "webhook" and not r.secret:
            problems.append(
                f"receivers[{i}].secret: required for a webhook receiver "
                "(bodies are signed with HMAC-SHA256)"
            )
    if cfg.route.receiver is None:
        problems.append("route.receiver: the root route needs a default receiver")
    for key in ("match", "match_re", "matchers"):
        if getattr(cfg.route, key):
            problems.append(
                f"route.{key}: the root route matches every alert; put matchers on child routes"
            )
    for path, route in _walk_routes(cfg.route, "route"):
        if route.receiver is not None and route.receiver not in names:
            problems.append(
                f"{path}.receiver: unknown receiver {route.receiver!r} (known: {', '.join(names)})"
            )
    for i, r in enumerate(cfg.receivers):
        if r.type == "webhook" and r.signature == "standard-webhooks" and r.secret:
            try:
                standard_webhooks_key(r.secret)
            except ValueError as exc:
                problems.append(f"receivers[{i}].secret: {exc} for signature: standard-webhooks")
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))
    if cfg.global_.map_url:
        receivers = [
            r if r.map_url else r.model_copy(update={"map_url": cfg.global_.map_url})
            for r in cfg.receivers
        ]
        cfg = cfg.model_copy(update={"receivers": receivers})
    return cfg


def demo_secret_problems(cfg: Config) -> list[str]:
    """Receivers that would sign with the public :data:`DEMO_SECRET` (one message each)."""
    return [
        f"receivers[{i}].secret: receiver {r.name!r} signs with the public demo secret "
        f"{DEMO_SECRET!r}; set FLEETPULSE_WEBHOOK_SECRET (or the receiver's secret) to a "
        f"private value, e.g. openssl rand -hex 32 ({ALLOW_DEMO_SECRET_ENV}=1 allows it, as "
        "`fleetpulse up` does)"
        for i, r in enumerate(cfg.receivers)
        if r.type == "webhook" and r.secret == DEMO_SECRET
    ]


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_config(text, source=str(p), env=env)


def default_config_path() -> Path:
    return Path(__file__).with_name("default_config.yaml")
