"""Decoding of ``fleet.alerts`` records into :class:`Alert` (pure). A record that is not a
usable alert yields a :class:`udfs.models.Rejection` (reason code + detail) for ``fleet.dlq``;
decoding never raises on input (tests/poison_corpus.py).

Details quote input through :func:`_show` only: bounded, and never ``repr`` of a container
(a 1000-deep list parses, but its ``repr`` overflows the stack). An alert is accepted only if it
encodes again, since the store and the receivers get it re-encoded: orjson reads 1024 levels of
nesting but writes 254, and a trigger whose ``custom_details`` nest deeper than that would
otherwise fail the service's state transaction, not its decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from udfs.models import PAGERDUTY_SEVERITIES, Reason, Rejection

ACTIONS = ("trigger", "acknowledge", "resolve")
MAX_RECORD_BYTES = 512 * 1024  # the Events API v2 limit for one event
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
SHOWN_CHARS = 64  # of a string quoted in a rejection's detail


@dataclass(frozen=True, slots=True)
class Alert:
    """One decoded alert record. ``labels`` are what routing, silences and inhibition match:
    ``class``, ``severity``, ``group``, ``component``, ``source``, ``dedup_key``, ``event_action``,
    every scalar of ``custom_details`` (e.g. ``truck_id``), and ``alertname`` (= ``class``
    unless ``custom_details`` has one, as Alertmanager tools expect)."""

    event_action: str
    dedup_key: str
    payload: dict[str, Any] | None
    links: tuple[dict[str, str], ...] = ()
    record_ts_ms: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    images: tuple[dict[str, str], ...] = ()  # Events API v2 images: {src, href?, alt?}

    @property
    def severity(self) -> str | None:
        return self.payload["severity"] if self.payload else None

    def event(self) -> dict[str, Any]:
        """The Events API v2 event without ``routing_key`` (added per receiver)."""
        ev: dict[str, Any] = {"event_action": self.event_action, "dedup_key": self.dedup_key}
        if self.payload is not None:
            ev["payload"] = self.payload
        if self.links:
            ev["links"] = list(self.links)
        if self.images:
            ev["images"] = list(self.images)
        return ev

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event(), "record_ts_ms": self.record_ts_ms}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Alert:
        result = decode_event(d["event"], record_ts_ms=int(d.get("record_ts_ms", 0)))
        if isinstance(result, Rejection):  # stored alerts were valid when stored
            raise ValueError(result.detail)
        return result


def _labels(dedup_key: str, action: str, payload: dict[str, Any] | None) -> dict[str, str]:
    labels: dict[str, str] = {
        "dedup_key": dedup_key,
        "event_action": action,
        "class": dedup_key.split(":", 1)[0],
    }
    if payload:
        details = payload.get("custom_details")
        if isinstance(details, dict):
            for k, v in details.items():
                if isinstance(v, str | int | float) and not isinstance(v, bool):
                    labels[str(k)] = str(v)
        for k in ("class", "severity", "group", "component", "source"):
            v = payload.get(k)
            if isinstance(v, str):
                labels[k] = v
    # Alertmanager's name label (amtool's first column, its bare-word matcher)
    labels.setdefault("alertname", labels["class"])
    return labels


def _show(v: Any) -> str:
    """A bounded quote of an input value for a rejection's detail: a string's start, else its
    JSON type."""
    if isinstance(v, str):
        cut = len(v) > SHOWN_CHARS
        return repr(v[:SHOWN_CHARS]) + (f"… ({len(v)} characters)" if cut else "")
    if v is None or isinstance(v, bool | int | float):
        return repr(v)
    return "a JSON object" if isinstance(v, dict) else "a JSON array"


def _valid_timestamp(s: str) -> bool:
    try:
        datetime.fromisoformat(s.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def decode(raw: bytes | None, record_ts_ms: int = 0) -> Alert | Rejection:
    """Bytes of a ``fleet.alerts`` record -> Alert, or a Rejection saying why not."""
    if raw is None:
        return Rejection(Reason.MISSING_FIELD, "record has no value (tombstone)")
    if len(raw) > MAX_RECORD_BYTES:
        return Rejection(Reason.TOO_LARGE, f"{len(raw)} bytes > {MAX_RECORD_BYTES}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(Reason.MALFORMED_JSON, str(exc)[:200])
    return decode_event(data, record_ts_ms)


def decode_event(data: Any, record_ts_ms: int = 0) -> Alert | Rejection:
    if not isinstance(data, dict):
        return Rejection(Reason.BAD_TYPE, f"alert must be a JSON object, not {type(data).__name__}")
    action = data.get("event_action")
    if action is None:
        return Rejection(Reason.MISSING_FIELD, "event_action is missing")
    if not isinstance(action, str):
        return Rejection(Reason.BAD_TYPE, f"event_action must be a string, not {_show(action)}")
    if action not in ACTIONS:
        return Rejection(
            Reason.BAD_VALUE, f"event_action {_show(action)} not in {', '.join(ACTIONS)}"
        )
    key = data.get("dedup_key")
    if key is None:
        return Rejection(Reason.MISSING_FIELD, "dedup_key is missing")
    if not isinstance(key, str) or not key.strip():
        return Rejection(Reason.BAD_TYPE, "dedup_key must be a non-empty string")
    if len(key) > MAX_DEDUP_KEY:
        return Rejection(Reason.BAD_VALUE, f"dedup_key longer than {MAX_DEDUP_KEY} characters")
    payload = data.get("payload")
    if payload is None:
        if action == "trigger":
            return Rejection(Reason.MISSING_FIELD, "payload is required for a trigger")
    else:
        checked = _check_payload(payload)
        if isinstance(checked, Rejection):
            return checked
        payload = checked
    links = data.get("links", [])
    if not isinstance(links, list) or not all(
        isinstance(x, dict) and isinstance(x.get("href"), str) for x in links
    ):
        return Rejection(Reason.BAD_TYPE, "links must be a list of {href, text} objects")
    clean_links = tuple({"href": x["href"], "text": str(x.get("text", x["href"]))} for x in links)
    if not clean_links and payload:
        clean_links = _map_link(payload)
    alert = Alert(
        action,
        key,
        payload,
        clean_links,
        record_ts_ms,
        _labels(key, action, payload),
        images=_images(data.get("images")),
    )
    try:
        orjson.dumps(alert.to_dict())
    except orjson.JSONEncodeError as exc:
        return Rejection(Reason.BAD_VALUE, f"alert cannot be re-encoded: {exc}"[:200])
    return alert


def _images(images: Any) -> tuple[dict[str, str], ...]:
    """The input's ``images`` (Events API v2: ``{src, href?, alt?}``), kept for the receivers;
    an entry without a string ``src`` is dropped (a picture is not worth losing the alert)."""
    if not isinstance(images, list):
        return ()
    return tuple(
        {k: x[k] for k in ("src", "href", "alt") if isinstance(x.get(k), str)}
        for x in images
        if isinstance(x, dict) and isinstance(x.get("src"), str) and x["src"]
    )


def _map_link(payload: dict[str, Any]) -> tuple[dict[str, str], ...]:
    d = payload.get("custom_details")
    if isinstance(d, dict):
        lat, lng = d.get("lat"), d.get("lng")
        if isinstance(lat, int | float) and isinstance(lng, int | float):
            return (
                {
                    "href": f"https://www.openstreetmap.org/?mlat={lat}&mlon={lng}#map=12/"
                    f"{lat}/{lng}",
                    "text": "Position on map",
                },
            )
    return ()


def _check_payload(p: Any) -> dict[str, Any] | Rejection:
    if not isinstance(p, dict):
        return Rejection(Reason.BAD_TYPE, "payload must be an object")
    for name in ("summary", "source", "severity"):
        if name not in p:
            return Rejection(Reason.MISSING_FIELD, f"payload.{name} is missing")
        if not isinstance(p[name], str) or not p[name].strip():
            return Rejection(Reason.BAD_TYPE, f"payload.{name} must be a non-empty string")
    if p["severity"] not in PAGERDUTY_SEVERITIES:
        return Rejection(
            Reason.BAD_VALUE,
            f"payload.severity {_show(p['severity'])} not in {', '.join(PAGERDUTY_SEVERITIES)}",
        )
    out: dict[str, Any] = {
        "summary": p["summary"],
        "source": p["source"],
        "severity": p["severity"],
    }
    if len(out["summary"]) > MAX_SUMMARY:
        out["summary"] = out["summary"][: MAX_SUMMARY - 1] + "…"
    ts = p.get("timestamp")
    if ts is not None:
        if not isinstance(ts, str) or not _valid_timestamp(ts):
            return Rejection(Reason.BAD_VALUE, f"payload.timestamp {_show(ts)} is not ISO 8601")
        out["timestamp"] = ts
    for name in ("component", "group", "class"):
        v = p.get(name)
        if v is not None:
            if not isinstance(v, str):
                return Rejection(Reason.BAD_TYPE, f"payload.{name} must be a string")
            out[name] = v
    details = p.get("custom_details")
    if details is not None:
        if not isinstance(details, dict):
            return Rejection(Reason.BAD_TYPE, "payload.custom_details must be an object")
        out["custom_details"] = details
    return out
