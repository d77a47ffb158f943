"""The dispatch engine (pure, clock injected): routing into aggregation groups, group timers
(``group_wait``, ``group_interval``), silences, inhibition, and the per-receiver lifecycle of each
``dedup_key`` (repeat suppression, escalation, resolve-once).

Semantics, per receiver and ``dedup_key``:

- An alert joins one group per matching route. A new group is flushed ``group_wait`` after its
  first alert; a group already notified is flushed at most every ``group_interval`` (at once if
  that long has passed); a group idle for ``repeat_interval`` is new again. Within a
  pending group, the latest record of a ``dedup_key`` wins (a burst collapses to its last state).
- At flush, a ``trigger`` is sent unless silenced, inhibited, or the receiver already has it
  open with the same action and severity and it was sent less than ``repeat_interval`` ago. A
  change of severity (escalation or de-escalation) is sent. ``acknowledge`` is sent only for
  an open alert. A ``resolve`` is sent once, only to receivers that have the alert open, and is
  never silenced or inhibited (so no incident is left open at a receiver); it closes the alert.
- Inhibition: an alert that is firing (last action trigger/acknowledge) and matches a rule's
  source mutes alerts matching the rule's target whose ``equal`` labels have the same values.
- Re-assertion (issue 29): sources re-send the trigger of every open alert periodically. The
  engine records, per firing ``dedup_key``, when it last saw a trigger or acknowledge
  (``asserted``); :meth:`Engine.resolve_timed_out` resolves, as if a resolve record had
  arrived, each firing key not re-asserted within ``resolve_timeout``.

State lives in :class:`EngineState`; it records which entries changed (``dirty_*``) so the store
persists only those, in the same transaction as the notifications they produced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from alerting import reassert, routing
from alerting.config import Config, InhibitRule
from alerting.matchers import Matcher, all_match
from alerting.records import Alert

#: ``OpenAlert.last_sent_ms`` of an alert whose trigger the receiver did not accept: no repeat
#: interval runs, so the next trigger of the key is sent
NOT_ACCEPTED_MS = -(1 << 62)


@dataclass
class OpenAlert:
    action: str  # trigger | acknowledge
    severity: str | None
    last_sent_ms: int
    group_id: str


@dataclass
class Group:
    group_id: str
    flush_at_ms: int | None = None
    last_flush_ms: int | None = None
    pending: dict[str, Alert] = field(default_factory=dict)

    @property
    def route_path(self) -> str:
        return self.group_id.split("|", 2)[0]

    @property
    def receiver(self) -> str:
        return self.group_id.split("|", 2)[1]


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_ms: int
    ends_ms: int
    comment: str = ""
    created_by: str = ""

    def active(self, now_ms: int) -> bool:
        return self.starts_ms <= now_ms < self.ends_ms

    def mutes(self, labels: dict[str, str], now_ms: int) -> bool:
        return self.active(now_ms) and all_match(self.matchers, labels)


@dataclass(frozen=True)
class Notification:
    """One event to deliver to one receiver (``event`` has no routing_key yet)."""

    receiver: str
    dedup_key: str
    event_action: str
    event: dict[str, Any]
    source_ts_ms: int


@dataclass(frozen=True)
class Suppressed:
    receiver: str
    dedup_key: str
    reason: str  # repeat | silenced | inhibited | not_open


@dataclass
class Asserted:
    """When the dispatcher last consumed a trigger or acknowledge of a firing key (its wall
    clock), and the last trigger (what a timeout resolve copies; None if only an acknowledge
    was seen, or the key was firing before the database had this table)."""

    seen_ms: int
    alert: Alert | None


@dataclass
class EngineState:
    open: dict[str, dict[str, OpenAlert]] = field(default_factory=dict)
    active: dict[str, dict[str, str]] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    asserted: dict[str, Asserted] = field(default_factory=dict)
    dirty_open: set[tuple[str, str]] = field(default_factory=set)  # (dedup_key, receiver)
    dirty_active: set[str] = field(default_factory=set)
    dirty_groups: set[str] = field(default_factory=set)
    dirty_pending: set[tuple[str, str]] = field(default_factory=set)  # (group_id, dedup_key)
    dirty_asserted: set[str] = field(default_factory=set)

    def clear_dirty(self) -> None:
        self.dirty_open.clear()
        self.dirty_active.clear()
        self.dirty_groups.clear()
        self.dirty_pending.clear()
        self.dirty_asserted.clear()

    def dirty(self) -> bool:
        return bool(
            self.dirty_open
            or self.dirty_active
            or self.dirty_groups
            or self.dirty_pending
            or self.dirty_asserted
        )

    def open_count(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for per_receiver in self.open.values():
            for r in per_receiver:
                counts[r] = counts.get(r, 0) + 1
        return counts


class _Inhibitor:
    """Index of firing source alerts of one rule by their ``equal`` label values."""

    def __init__(self, rule: InhibitRule) -> None:
        self.source = rule.source()
        self.target = rule.target()
        self.equal = tuple(rule.equal)
        self.sources: dict[tuple[str, ...], set[str]] = {}

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        return tuple(labels.get(k, "") for k in self.equal)

    def add(self, dedup_key: str, labels: dict[str, str]) -> None:
        if all_match(self.source, labels):
            self.sources.setdefault(self._key(labels), set()).add(dedup_key)

    def remove(self, dedup_key: str, labels: dict[str, str]) -> None:
        k = self._key(labels)
        s = self.sources.get(k)
        if s is not None:
            s.discard(dedup_key)
            if not s:
                del self.sources[k]

    def inhibits(self, dedup_key: str, labels: dict[str, str]) -> bool:
        if not all_match(self.target, labels):
            return False
        s = self.sources.get(self._key(labels))
        return s is not None and bool(s - {dedup_key})


class Engine:
    def __init__(
        self, cfg: Config, state: EngineState | None = None, silences: Iterable[Silence] = ()
    ) -> None:
        self.cfg = cfg
        self.root = routing.build(cfg.route)
        self.routes = routing.index(self.root)
        self.state = state or EngineState()
        self.silences: tuple[Silence, ...] = tuple(silences)
        self.inhibitors = [_Inhibitor(r) for r in cfg.inhibit_rules]
        for key, labels in self.state.active.items():
            for inh in self.inhibitors:
                inh.add(key, labels)
        self._with_pending = {g.group_id for g in self.state.groups.values() if g.pending}
        self._last_purge_ms = 0

    # -- input -------------------------------------------------------------------------------
    def ingest(self, alert: Alert, now_ms: int) -> None:
        st = self.state
        key = alert.dedup_key
        old = st.active.get(key)
        if old is not None:
            for inh in self.inhibitors:
                inh.remove(key, old)
        if alert.event_action == "resolve":
            if old is not None:
                del st.active[key]
                st.dirty_active.add(key)
            if st.asserted.pop(key, None) is not None:
                st.dirty_asserted.add(key)
        else:
            st.active[key] = alert.labels
            st.dirty_active.add(key)
            for inh in self.inhibitors:
                inh.add(key, alert.labels)
            prev = st.asserted.get(key)
            last = alert if alert.event_action == "trigger" or prev is None else prev.alert
            st.asserted[key] = Asserted(now_ms, last if last and last.payload else None)
            st.dirty_asserted.add(key)
        group_ids = [r.group_key(alert.labels) for r in routing.match(self.root, alert.labels)]
        if alert.event_action != "trigger":
            for o in st.open.get(key, {}).values():
                if o.group_id not in group_ids:
                    group_ids.append(o.group_id)
        for gid in group_ids:
            self._add_to_group(gid, alert, now_ms)

    def _route_of(self, group_id: str) -> routing.Route:
        return self.routes.get(group_id.split("|", 1)[0], self.root)

    def _add_to_group(self, gid: str, alert: Alert, now_ms: int) -> None:
        st = self.state
        g = st.groups.get(gid)
        if g is None:
            g = st.groups[gid] = Group(gid)
        route = self._route_of(gid)
        if g.flush_at_ms is None:
            if self._fresh(g, route, now_ms):
                g.flush_at_ms = now_ms + route.group_wait_ms
            else:
                g.flush_at_ms = max(now_ms, (g.last_flush_ms or 0) + route.group_interval_ms)
            st.dirty_groups.add(gid)
        g.pending[alert.dedup_key] = alert
        st.dirty_pending.add((gid, alert.dedup_key))
        self._with_pending.add(gid)

    def not_accepted(self, dedup_key: str, receiver: str, sent_ms: int) -> bool:
        """The notification of ``dedup_key`` queued for ``receiver`` at ``sent_ms`` went to
        dead letters. The alert stays open here (its resolve is still queued; the worker sends
        it only to a receiver that accepted the key), but the next trigger is not a repeat.
        An entry set by a later notification is left alone. Returns whether it changed."""
        cur = self.state.open.get(dedup_key, {}).get(receiver)
        if cur is None or cur.last_sent_ms > sent_ms or cur.last_sent_ms == NOT_ACCEPTED_MS:
            return False
        cur.last_sent_ms = NOT_ACCEPTED_MS
        self.state.dirty_open.add((dedup_key, receiver))
        return True

    # -- re-assertion ------------------------------------------------------------------------
    def timed_out(self, now_ms: int, timeout_ms: int, since_ms: int) -> list[str]:
        """Firing keys whose last assertion, taken as no earlier than ``since_ms`` (the
        process start: a restarted dispatcher gives the sources a full timeout), is
        ``timeout_ms`` or more before ``now_ms``."""
        st = self.state
        cutoff = now_ms - timeout_ms
        if since_ms > cutoff:
            return []
        out = []
        for key in st.active:
            a = st.asserted.get(key)
            if (a.seen_ms if a else since_ms) <= cutoff:
                out.append(key)
        return out

    def resolve_timed_out(self, now_ms: int, timeout_ms: int, since_ms: int) -> list[Alert]:
        """Resolve each key of :meth:`timed_out` exactly as a resolve record would (routing,
        per-key order, only to receivers that have it open); returns the resolves."""
        out = []
        for key in self.timed_out(now_ms, timeout_ms, since_ms):
            a = self.state.asserted.get(key)
            resolve = reassert.timeout_resolve(
                key, a.alert if a else None, self.state.active[key], timeout_ms, now_ms
            )
            self.ingest(resolve, now_ms)
            out.append(resolve)
        return out

    # -- timers ------------------------------------------------------------------------------
    def next_flush_ms(self) -> int | None:
        times = [
            t for gid in self._with_pending if (t := self.state.groups[gid].flush_at_ms) is not None
        ]
        return min(times) if times else None

    def flush_due(self, now_ms: int) -> tuple[list[Notification], list[Suppressed]]:
        st = self.state
        sent: list[Notification] = []
        dropped: list[Suppressed] = []
        due = sorted(
            (g.flush_at_ms or 0, gid)
            for gid in self._with_pending
            if (g := st.groups[gid]).flush_at_ms is not None and g.flush_at_ms <= now_ms
        )
        for _, gid in due:
            g = st.groups[gid]
            route = self._route_of(gid)
            for alert in g.pending.values():
                out = self._decide(g.receiver, gid, alert, route, now_ms)
                if isinstance(out, Notification):
                    sent.append(out)
                else:
                    dropped.append(out)
                st.dirty_pending.add((gid, alert.dedup_key))
            g.pending = {}
            g.flush_at_ms = None
            g.last_flush_ms = now_ms
            st.dirty_groups.add(gid)
            self._with_pending.discard(gid)
        if now_ms - self._last_purge_ms >= 1000:
            self._purge(now_ms)
        return sent, dropped

    @staticmethod
    def _fresh(g: Group, route: routing.Route, now_ms: int) -> bool:
        """A group never flushed, or idle for ``repeat_interval``, starts with ``group_wait``."""
        return g.last_flush_ms is None or now_ms >= g.last_flush_ms + route.repeat_interval_ms

    def _purge(self, now_ms: int) -> None:
        self._last_purge_ms = now_ms
        st = self.state
        for gid in [
            gid
            for gid, g in st.groups.items()
            if not g.pending and self._fresh(g, self._route_of(gid), now_ms)
        ]:
            del st.groups[gid]
            st.dirty_groups.add(gid)

    def silenced(self, labels: dict[str, str], now_ms: int) -> Silence | None:
        for s in self.silences:
            if s.mutes(labels, now_ms):
                return s
        return None

    def inhibited(self, alert: Alert) -> bool:
        return any(inh.inhibits(alert.dedup_key, alert.labels) for inh in self.inhibitors)

    def _decide(
        self, receiver: str, gid: str, alert: Alert, route: routing.Route, now_ms: int
    ) -> Notification | Suppressed:
        st = self.state
        key = alert.dedup_key
        per = st.open.get(key, {})
        cur = per.get(receiver)

        def note() -> Notification:
            return Notification(
                receiver, key, alert.event_action, alert.event(), alert.record_ts_ms
            )

        if alert.event_action == "resolve":
            if cur is None:
                return Suppressed(receiver, key, "not_open")
            del per[receiver]
            if not per:
                st.open.pop(key, None)
            st.dirty_open.add((key, receiver))
            return note()
        if alert.event_action == "acknowledge" and cur is None:
            return Suppressed(receiver, key, "not_open")
        if self.silenced(alert.labels, now_ms) is not None:
            return Suppressed(receiver, key, "silenced")
        if self.inhibited(alert):
            return Suppressed(receiver, key, "inhibited")
        if (
            cur is not None
            and cur.action == alert.event_action
            and cur.severity == (alert.severity or cur.severity)
            and now_ms - cur.last_sent_ms < route.repeat_interval_ms
        ):
            return Suppressed(receiver, key, "repeat")
        severity = alert.severity or (cur.severity if cur else None)
        st.open.setdefault(key, {})[receiver] = OpenAlert(alert.event_action, severity, now_ms, gid)
        st.dirty_open.add((key, receiver))
        return note()
