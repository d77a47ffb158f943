"""Pure range logic of a backfill: the times an operator types, the Kafka offsets a range
covers, the staging database, and the progress of a run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fleetpulse.backfill import BackfillError

# (topic, partition)
Partition = tuple[str, int]


def parse_time(text: str) -> int:
    """Epoch milliseconds of ``text``: an integer (epoch ms) or ISO 8601 (UTC when it names
    no zone: the contract's times are UTC)."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        value = int(text)
        if value < 0:
            raise BackfillError(f"time {text!r} is before 1970")
        return value
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BackfillError(
            f"time {text!r} is neither epoch milliseconds nor ISO 8601 (2026-12-07T10:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def check_range(start_ms: int, stop_ms: int) -> None:
    if stop_ms <= start_ms:
        raise BackfillError(f"--to ({stop_ms}) must be after --from ({start_ms})")


def redis_db(url: str) -> int:
    """The database number a redis:// URL selects (its path, else ``?db=``, else 0)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    if path:
        if not path.isdigit():
            raise BackfillError(f"Redis URL path {parts.path!r} is not a database number")
        return int(path)
    query = dict(parse_qsl(parts.query))
    return int(query.get("db", 0))


def with_db(url: str, db: int) -> str:
    """``url`` selecting database ``db`` instead (user, password and options kept)."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "db"])
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", query, parts.fragment))


def staging_db(live_url: str, chosen: int | None) -> int:
    """The staging database: ``chosen``, else the live one + 1; never the live one (the
    backfill empties staging before it starts)."""
    live = redis_db(live_url)
    db = live + 1 if chosen is None else chosen
    if db == live:
        raise BackfillError(f"the staging database must not be the live one ({live})")
    if db < 0:
        raise BackfillError(f"--staging-db must be 0 or more, not {db}")
    return db


@dataclass(frozen=True)
class OffsetRange:
    """The records of a backfill: per partition, the first offset in range and the first
    past it (Kafka's offsets for the --from and --to timestamps; the end offset where no
    record is that late)."""

    start: Mapping[Partition, int]
    stop: Mapping[Partition, int]

    @property
    def total(self) -> int:
        return sum(max(0, self.stop[p] - self.start.get(p, self.stop[p])) for p in self.stop)

    def done(self, position: Mapping[Partition, int]) -> int:
        """Records read when each partition has reached ``position`` (committed offsets;
        a partition without one has read nothing)."""
        count = 0
        for p, stop in self.stop.items():
            start = self.start.get(p, stop)
            at = position.get(p)
            if at is not None:
                count += max(0, min(at, stop) - start)
        return count


def range_offsets(
    for_start: Mapping[Partition, int | None],
    for_stop: Mapping[Partition, int | None],
    ends: Mapping[Partition, int],
) -> OffsetRange:
    """The :class:`OffsetRange` from Kafka's answers: ``offsets_for_times`` at --from and at
    --to (None: no record that late, so the end offset) and the end offsets."""
    start = {p: ends[p] if for_start.get(p) is None else int(for_start[p]) for p in ends}  # type: ignore[arg-type]
    stop = {p: ends[p] if for_stop.get(p) is None else int(for_stop[p]) for p in ends}  # type: ignore[arg-type]
    return OffsetRange(start, stop)


def describe_rate(done: int, elapsed_s: float, total: int) -> str:
    """``12,345 rec/s, ETA 0:42`` for a progress line."""
    if elapsed_s <= 0 or done <= 0:
        return "starting"
    rate = done / elapsed_s
    left = max(0, total - done) / rate
    return f"{rate:,.0f} rec/s, ETA {int(left // 60)}:{int(left % 60):02d}"
