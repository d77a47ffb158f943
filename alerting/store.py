"""Durable state in SQLite (``<state-dir>/alerting.db``, WAL): engine state (open alerts, firing
alerts, pending groups), the delivery outbox (retry queue), dead letters and silences.

A batch of engine changes and the notifications it produced are written in one transaction
before Kafka offsets are committed; WAL with ``synchronous=NORMAL`` survives a killed process.
One connection guarded by a lock: the consumer loop and the sender threads share it.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from alerting import StoreError
from alerting.engine import EngineState, Group, Notification, OpenAlert, Silence
from alerting.matchers import Matcher
from alerting.records import Alert
from udfs.encoding import kept

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, dedup_key TEXT NOT NULL,
  event_action TEXT NOT NULL, event BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_at_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, source_ts_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT, outbox_id INTEGER, receiver TEXT NOT NULL,
  dedup_key TEXT NOT NULL, event_action TEXT NOT NULL, event BLOB NOT NULL,
  attempts INTEGER NOT NULL, created_ms INTEGER NOT NULL, dead_at_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS open_alerts (
  dedup_key TEXT NOT NULL, receiver TEXT NOT NULL, action TEXT NOT NULL, severity TEXT,
  last_sent_ms INTEGER NOT NULL, group_id TEXT NOT NULL, PRIMARY KEY (dedup_key, receiver));
CREATE TABLE IF NOT EXISTS active_alerts (dedup_key TEXT PRIMARY KEY, labels BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
  group_id TEXT PRIMARY KEY, flush_at_ms INTEGER, last_flush_ms INTEGER);
CREATE TABLE IF NOT EXISTS pending (
  group_id TEXT NOT NULL, dedup_key TEXT NOT NULL, alert BLOB NOT NULL,
  PRIMARY KEY (group_id, dedup_key));
CREATE TABLE IF NOT EXISTS silences (
  id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_ms INTEGER NOT NULL,
  ends_ms INTEGER NOT NULL, comment TEXT NOT NULL, created_by TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
"""


@dataclass
class OutboxItem:
    id: int
    receiver: str
    dedup_key: str
    event_action: str
    event: bytes
    attempts: int
    next_at_ms: int
    created_ms: int
    source_ts_ms: int
    last_error: str = ""


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    outbox_id: int
    receiver: str
    dedup_key: str
    event_action: str
    event: bytes
    attempts: int
    created_ms: int
    dead_at_ms: int
    last_error: str


class Store:
    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                self.dir / "alerting.db", check_same_thread=False, isolation_level=None, timeout=30
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot use state directory {self.dir}: {exc}") from None
        self.lock = threading.RLock()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def _tx(self, fn: Any) -> Any:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self.db)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            return result

    # -- engine state ------------------------------------------------------------------------
    def load_engine_state(self) -> EngineState:
        st = EngineState()
        with self.lock:
            for key, rcv, action, sev, last, gid in self.db.execute(
                "SELECT dedup_key, receiver, action, severity, last_sent_ms, group_id "
                "FROM open_alerts"
            ):
                st.open.setdefault(key, {})[rcv] = OpenAlert(action, sev, last, gid)
            for key, labels in self.db.execute("SELECT dedup_key, labels FROM active_alerts"):
                st.active[key] = orjson.loads(labels)
            for gid, flush_at, last in self.db.execute(
                "SELECT group_id, flush_at_ms, last_flush_ms FROM groups"
            ):
                st.groups[gid] = Group(gid, flush_at, last)
            for gid, key, blob in self.db.execute(
                "SELECT group_id, dedup_key, alert FROM pending ORDER BY rowid"
            ):
                g = st.groups.setdefault(gid, Group(gid, 0, None))
                g.pending[key] = Alert.from_dict(orjson.loads(blob))
        return st

    def commit_batch(
        self, st: EngineState, notes: Iterable[Notification], now_ms: int
    ) -> list[OutboxItem]:
        """Persist the engine's dirty entries and enqueue ``notes``, atomically."""

        def run(db: sqlite3.Connection) -> list[OutboxItem]:
            for key, rcv in st.dirty_open:
                o = st.open.get(key, {}).get(rcv)
                if o is None:
                    db.execute(
                        "DELETE FROM open_alerts WHERE dedup_key=? AND receiver=?", (key, rcv)
                    )
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO open_alerts VALUES (?,?,?,?,?,?)",
                        (key, rcv, o.action, o.severity, o.last_sent_ms, o.group_id),
                    )
            for key in st.dirty_active:
                labels = st.active.get(key)
                if labels is None:
                    db.execute("DELETE FROM active_alerts WHERE dedup_key=?", (key,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO active_alerts VALUES (?,?)",
                        (key, orjson.dumps(labels)),
                    )
            for gid in st.dirty_groups:
                g = st.groups.get(gid)
                if g is None:
                    db.execute("DELETE FROM groups WHERE group_id=?", (gid,))
                    db.execute("DELETE FROM pending WHERE group_id=?", (gid,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO groups VALUES (?,?,?)",
                        (gid, g.flush_at_ms, g.last_flush_ms),
                    )
            for gid, key in st.dirty_pending:
                g = st.groups.get(gid)
                a = g.pending.get(key) if g else None
                if a is None:
                    db.execute("DELETE FROM pending WHERE group_id=? AND dedup_key=?", (gid, key))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO pending VALUES (?,?,?)",
                        (gid, key, orjson.dumps(a.to_dict())),
                    )
            items = []
            for n in notes:
                # kept: the item stays in memory until delivered (a dead receiver queues
                # thousands)
                ev = kept(orjson.dumps(n.event))
                cur = db.execute(
                    "INSERT INTO outbox (receiver, dedup_key, event_action, event, attempts, "
                    "next_at_ms, created_ms, source_ts_ms) VALUES (?,?,?,?,0,?,?,?)",
                    (n.receiver, n.dedup_key, n.event_action, ev, now_ms, now_ms, n.source_ts_ms),
                )
                items.append(
                    OutboxItem(
                        int(cur.lastrowid or 0),
                        n.receiver,
                        n.dedup_key,
                        n.event_action,
                        ev,
                        0,
                        now_ms,
                        now_ms,
                        n.source_ts_ms,
                    )
                )
            return items

        items: list[OutboxItem] = self._tx(run)
        st.clear_dirty()
        return items

    # -- outbox ------------------------------------------------------------------------------
    def outbox(self) -> list[OutboxItem]:
        with self.lock:
            rows = self.db.execute(
                "SELECT id, receiver, dedup_key, event_action, event, attempts, next_at_ms, "
                "created_ms, source_ts_ms, last_error FROM outbox ORDER BY id"
            ).fetchall()
        return [OutboxItem(*r) for r in rows]

    def apply_outcomes(self, ops: list[tuple[str, OutboxItem, str, int]]) -> None:
        """Record delivery outcomes in order, in one transaction: ``(kind, item, error, now)``
        with kind ``delivered`` (row removed), ``retry`` (attempts/next_at/error updated) or
        ``dead`` (moved to dead letters)."""

        def run(db: sqlite3.Connection) -> None:
            for kind, item, error, now_ms in ops:
                if kind == "delivered":
                    db.execute("DELETE FROM outbox WHERE id=?", (item.id,))
                elif kind == "retry":
                    db.execute(
                        "UPDATE outbox SET attempts=?, next_at_ms=?, last_error=? WHERE id=?",
                        (item.attempts, item.next_at_ms, error, item.id),
                    )
                else:
                    db.execute(
                        "INSERT INTO dead_letters (outbox_id, receiver, dedup_key, event_action, "
                        "event, attempts, created_ms, dead_at_ms, last_error) "
                        "VALUES (?,?,?,?,?,?,?,?,?)",
                        (
                            item.id,
                            item.receiver,
                            item.dedup_key,
                            item.event_action,
                            item.event,
                            item.attempts,
                            item.created_ms,
                            now_ms,
                            error,
                        ),
                    )
                    db.execute("DELETE FROM outbox WHERE id=?", (item.id,))

        if ops:
            self._tx(run)

    # -- dead letters ------------------------------------------------------------------------
    def dead_letters(
        self, receiver: str | None = None, ids: Iterable[int] | None = None
    ) -> list[DeadLetterRow]:
        sql = (
            "SELECT id, outbox_id, receiver, dedup_key, event_action, event, attempts, "
            "created_ms, dead_at_ms, last_error FROM dead_letters"
        )
        where: list[str] = []
        args: list[Any] = []
        if receiver:
            where.append("receiver=?")
            args.append(receiver)
        id_list = list(ids or [])
        if id_list:
            where.append(f"id IN ({','.join('?' * len(id_list))})")
            args.extend(id_list)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.lock:
            return [DeadLetterRow(*r) for r in self.db.execute(sql + " ORDER BY id", args)]

    def delete_dead_letter(self, dl_id: int) -> None:
        with self.lock:
            self.db.execute("DELETE FROM dead_letters WHERE id=?", (dl_id,))

    def update_dead_letter(self, dl_id: int, error: str, now_ms: int) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE dead_letters SET last_error=?, dead_at_ms=?, "
                "attempts=attempts+1 WHERE id=?",
                (error, now_ms, dl_id),
            )

    # -- silences ----------------------------------------------------------------------------
    def add_silence(
        self,
        matchers: list[Matcher],
        starts_ms: int,
        ends_ms: int,
        comment: str,
        created_by: str,
        now_ms: int,
    ) -> str:
        sid = uuid.uuid4().hex[:12]
        with self.lock:
            self.db.execute(
                "INSERT INTO silences VALUES (?,?,?,?,?,?,?)",
                (
                    sid,
                    orjson.dumps([str(m) for m in matchers]).decode(),
                    starts_ms,
                    ends_ms,
                    comment,
                    created_by,
                    now_ms,
                ),
            )
        return sid

    def silences(self) -> list[Silence]:
        with self.lock:
            rows = self.db.execute(
                "SELECT id, matchers, starts_ms, ends_ms, comment, created_by "
                "FROM silences ORDER BY starts_ms"
            ).fetchall()
        return [
            Silence(
                r[0], tuple(Matcher.parse(m) for m in orjson.loads(r[1])), r[2], r[3], r[4], r[5]
            )
            for r in rows
        ]

    def remove_silence(self, sid: str) -> bool:
        with self.lock:
            cur = self.db.execute(
                "DELETE FROM silences WHERE id=? OR id LIKE ?",
                (sid, sid + "%") if len(sid) >= 4 else (sid, sid),
            )
            return cur.rowcount > 0

    def data_version(self) -> int:
        """Changes when another connection (e.g. the CLI) commits to the database."""
        with self.lock:
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])
