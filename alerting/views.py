"""What the dispatcher shows of its firing alerts (pure): for ``fleetpulse alerts query`` and
the Alertmanager-shaped API. Built from the committed state (:class:`alerting.store.FiringRow`),
the configuration (routing, inhibit rules) and the silences, so it never reads the running
engine's memory from another thread."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alerting import routing
from alerting.config import Config
from alerting.engine import Silence
from alerting.matchers import Matcher, all_match
from alerting.store import FiringRow

#: Go's zero time: what Alertmanager writes for a time that is not set
ZERO_TIME = "0001-01-01T00:00:00.000Z"


@dataclass(frozen=True)
class AlertView:
    dedup_key: str
    labels: dict[str, str]
    summary: str
    starts_ms: int
    updated_ms: int
    ends_ms: int | None  # when resolve_timeout would resolve it; None when that is off
    receivers: tuple[str, ...]  # where routing sends it
    open_receivers: tuple[str, ...]  # where it is open (a trigger was sent)
    silenced_by: tuple[str, ...]
    inhibited_by: tuple[str, ...]  # fingerprints of the inhibiting alerts

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.dedup_key)

    @property
    def state(self) -> str:
        return "suppressed" if self.silenced_by or self.inhibited_by else "active"


def fingerprint(dedup_key: str) -> str:
    """16 hex digits, stable per ``dedup_key`` (Alertmanager's fingerprint is a label hash)."""
    return hashlib.sha256(dedup_key.encode()).hexdigest()[:16]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


def parse_iso_ms(text: str) -> int:
    """RFC 3339 (``Z`` or an offset; nanoseconds are cut to microseconds) -> epoch ms."""
    dt = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _starts_ms(row: FiringRow) -> int:
    payload = (row.alert or {}).get("event", {}).get("payload") or {}
    ts = payload.get("timestamp")
    if isinstance(ts, str):
        try:
            return parse_iso_ms(ts)
        except ValueError:
            pass
    sent = [last for _, _, _, last in row.open if last > 0]
    return min(sent) if sent else (row.seen_ms or 0)


def build(
    rows: Iterable[FiringRow], cfg: Config, silences: Iterable[Silence], now_ms: int
) -> list[AlertView]:
    rows = list(rows)
    root = routing.build(cfg.route)
    active_silences = [s for s in silences if s.active(now_ms)]
    timeout = cfg.global_.resolve_timeout_ms
    inhibited: dict[str, list[str]] = {}
    for rule in cfg.inhibit_rules:
        source, target = rule.source(), rule.target()
        by_equal: dict[tuple[str, ...], list[str]] = {}
        for r in rows:
            if all_match(source, r.labels):
                by_equal.setdefault(tuple(r.labels.get(k, "") for k in rule.equal), []).append(
                    r.dedup_key
                )
        for r in rows:
            if all_match(target, r.labels):
                srcs = by_equal.get(tuple(r.labels.get(k, "") for k in rule.equal), [])
                inhibited.setdefault(r.dedup_key, []).extend(
                    fingerprint(k) for k in srcs if k != r.dedup_key
                )
    out = []
    for r in rows:
        payload = (r.alert or {}).get("event", {}).get("payload") or {}
        updated = r.seen_ms or _starts_ms(r)
        out.append(
            AlertView(
                dedup_key=r.dedup_key,
                labels=dict(r.labels),
                summary=str(payload.get("summary", "")),
                starts_ms=_starts_ms(r),
                updated_ms=updated,
                ends_ms=updated + timeout if timeout else None,
                receivers=tuple(dict.fromkeys(rt.receiver for rt in routing.match(root, r.labels))),
                open_receivers=tuple(dict.fromkeys(rcv for rcv, _, _, _ in r.open)),
                silenced_by=tuple(s.id for s in active_silences if s.mutes(r.labels, now_ms)),
                inhibited_by=tuple(dict.fromkeys(inhibited.get(r.dedup_key, []))),
            )
        )
    return out


def select(
    views: Iterable[AlertView],
    matchers: Iterable[Matcher] = (),
    active: bool = True,
    silenced: bool = True,
    inhibited: bool = True,
    receiver: str = "",
) -> list[AlertView]:
    """Alertmanager's ``GET /api/v2/alerts`` filters: label matchers, which states to include,
    and a receiver regex (anchored) matched against the routed receivers."""
    ms = tuple(matchers)
    rx = re.compile(receiver) if receiver else None
    out = []
    for v in views:
        if not all_match(ms, v.labels):
            continue
        if v.state == "active" and not active:
            continue
        if v.silenced_by and not silenced:
            continue
        if v.inhibited_by and not inhibited:
            continue
        if rx and not any(rx.fullmatch(name) for name in v.receivers):
            continue
        out.append(v)
    return out


def gettable_alert(v: AlertView) -> dict[str, Any]:
    """Alertmanager API v2 ``gettableAlert``."""
    return {
        "labels": v.labels,
        "annotations": {"summary": v.summary} if v.summary else {},
        "startsAt": iso(v.starts_ms),
        "updatedAt": iso(v.updated_ms),
        "endsAt": iso(v.ends_ms) if v.ends_ms is not None else ZERO_TIME,
        "fingerprint": v.fingerprint,
        "generatorURL": "",
        "receivers": [{"name": n} for n in v.receivers],
        "status": {
            "state": v.state,
            "silencedBy": list(v.silenced_by),
            "inhibitedBy": list(v.inhibited_by),
            "mutedBy": [],
        },
    }


def silence_state(s: Silence, now_ms: int) -> str:
    if s.ends_ms <= now_ms:
        return "expired"
    return "active" if s.starts_ms <= now_ms else "pending"


def gettable_silence(s: Silence, updated_ms: int, now_ms: int) -> dict[str, Any]:
    """Alertmanager API v2 ``gettableSilence``."""
    return {
        "id": s.id,
        "status": {"state": silence_state(s, now_ms)},
        "updatedAt": iso(updated_ms),
        "matchers": [m.to_api() for m in s.matchers],
        "startsAt": iso(s.starts_ms),
        "endsAt": iso(s.ends_ms),
        "createdBy": s.created_by,
        "comment": s.comment,
        "annotations": {},
    }


def silence_matches_filter(s: Silence, filters: Iterable[Matcher]) -> bool:
    """Alertmanager's silence filter: each filter matcher matches the labels the silence's
    own matchers name (``name -> value``)."""
    labels = {m.name: m.value for m in s.matchers}
    return all(f.name in labels and f.matches(labels) for f in filters)
