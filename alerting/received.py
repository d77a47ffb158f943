"""The local receiver's record of what it received (``<data>/receiver/alerts.jsonl``): one JSON
line per delivery, written and fsynced before the receiver answers, read back by
``fleetpulse alerts tail``.

Each line holds the delivery's identity, the signature verdict and the few fields of the event
a person looks at first; never the whole body (a bounded record keeps a long-running `up`'s
file small). Everything in a record came from the network: printed only through
:func:`udfs.printable.printable`. The file is rotated to ``alerts.jsonl.1`` past a size.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from udfs.printable import printable

FIELD_CHARS = 1000  # longest string kept of any field
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024


def default_path() -> Path:
    """``$FLEETPULSE_DATA_DIR/receiver/alerts.jsonl`` (where `fleetpulse up`'s receiver
    writes)."""
    from udfs.data_dir import default_data_dir

    return default_data_dir() / "receiver" / "alerts.jsonl"


def _text(value: Any) -> str:
    return value[:FIELD_CHARS] if isinstance(value, str) else ""


def summarize(body: bytes) -> dict[str, str]:
    """The fields `tail` shows, from an Events API v2 body; empty strings for what is missing
    or not JSON (never raises)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"action": "", "dedup_key": "", "severity": "", "summary": "(not JSON)"}
    if not isinstance(doc, dict):
        return {"action": "", "dedup_key": "", "severity": "", "summary": "(not an object)"}
    payload = doc.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    return {
        "action": _text(doc.get("event_action")),
        "dedup_key": _text(doc.get("dedup_key")),
        "severity": _text(payload.get("severity")),
        "summary": _text(payload.get("summary")),
        "class": _text(payload.get("class")),
    }


def record(
    *,
    received_ms: int,
    status: int,
    verdict: str,
    reason: str = "",
    delivery_id: str = "",
    path: str = "",
    size: int = 0,
    body: bytes | None = None,
    duplicate: bool = False,
) -> dict[str, Any]:
    """One line of the file. ``verdict``: ``ok`` (signature verified) or ``rejected``."""
    rec: dict[str, Any] = {
        "received_ms": received_ms,
        "status": status,
        "verdict": verdict,
        "reason": reason[:FIELD_CHARS],
        "delivery_id": delivery_id[:FIELD_CHARS],
        "path": path[:FIELD_CHARS],
        "bytes": size,
    }
    if duplicate:
        rec["duplicate"] = True
    if body is not None:
        rec.update(summarize(body))
    return rec


def format_line(rec: dict[str, Any]) -> str:
    """time, action, dedup_key, severity, summary and the signature verdict, tab-separated,
    every field made printable and bounded."""
    ms: Any = rec.get("received_ms")
    try:
        when = datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        when = "?"
    if rec.get("verdict") == "ok":
        verdict = "signature ok" + (" (duplicate delivery)" if rec.get("duplicate") else "")
    else:
        verdict = f"REJECTED {printable(rec.get('status', ''))}: {printable(rec.get('reason'))}"
    cols = [
        when,
        printable(rec.get("action") or "-", 20),
        printable(rec.get("dedup_key") or "-", 200),
        printable(rec.get("severity") or "-", 20),
        printable(rec.get("summary") or "-", 300),
        verdict,
    ]
    return "\t".join(cols)


class ReceivedLog:
    """Appends records durably (write, flush, fsync under a lock), rotating past a size."""

    def __init__(self, path: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.path = path
        self.max_file_bytes = max_file_bytes
        self.lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "ab")  # noqa: SIM115 - closed by close()

    def append(self, rec: dict[str, Any]) -> None:
        line = orjson.dumps(rec) + b"\n"
        with self.lock:
            if self.file.tell() + len(line) > self.max_file_bytes and self.file.tell() > 0:
                self.file.close()
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                self.file = open(self.path, "ab")  # noqa: SIM115
            self.file.write(line)
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        with self.lock:
            self.file.close()


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # a line cut short by a crash
    return doc if isinstance(doc, dict) else None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _lines(data: bytes) -> list[bytes]:
    return [ln for ln in data.split(b"\n") if ln.strip()]


def read_last(path: Path, n: int) -> tuple[list[dict[str, Any]], int]:
    """The last ``n`` complete records (the rotated file's too when the current one holds
    fewer) and the offset in ``path`` after them, where :func:`follow` goes on."""
    data = _read(path)
    end = data.rfind(b"\n") + 1  # a line still being written is left to follow()
    if n <= 0:
        return [], end
    last: deque[bytes] = deque(maxlen=n)
    current = _lines(data[:end])
    if len(current) < n:
        last.extend(_lines(_read(path.with_name(path.name + ".1"))))
    last.extend(current)
    return [r for r in map(_parse, last) if r is not None], end


def follow(path: Path, start: int = 0, poll_s: float = 0.5) -> Iterator[dict[str, Any]]:
    """Records appended to ``path`` after offset ``start``, forever (a rotated or replaced
    file is read from its start)."""
    pos, ino = start, _size_and_inode(path)[1]
    pending = b""
    while True:
        size, now_ino = _size_and_inode(path)
        if now_ino != ino or size < pos:
            pos, ino, pending = 0, now_ino, b""
        if size > pos:
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read(size - pos)
            pos += len(chunk)
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                rec = _parse(line) if line.strip() else None
                if rec is not None:
                    yield rec
        else:
            time.sleep(poll_s)


def _size_and_inode(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return 0, 0
    return st.st_size, st.st_ino
