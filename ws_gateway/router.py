"""The gateway's core, free of I/O: stream entries in, frames into client queues out.

It keeps the last position of every truck (to detect a truck leaving an area), a bounded
in-memory copy of the recent stream (to replay after a reconnect) and the subscription index.
The asyncio server feeds it stream entries and subscription changes; tests drive it directly.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Protocol

import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from udfs.encoding import kept
from ws_gateway import frames
from ws_gateway.filters import TRUCK_ID_RE, Envelope, Filter
from ws_gateway.index import SubscriptionIndex

SeqKey = tuple[int, int]


def seq_key(seq: str | bytes) -> SeqKey:
    """Order of a Redis stream id ``<ms>-<n>``; ValueError if it is not one."""
    if isinstance(seq, bytes):
        seq = seq.decode("ascii")
    ms, _, n = seq.partition("-")
    return int(ms), int(n or 0)


def seq_text(key: SeqKey) -> str:
    return f"{key[0]}-{key[1]}"


class Client(Protocol):
    """A connection as the router sees it: somewhere to put frames."""

    def enqueue(self, key: Hashable | None, frame: bytes) -> None: ...


class Subscription:
    """One ``subscribe`` of one client; ``allowed`` is the area its token may see (None: all)."""

    __slots__ = ("client", "sub_id", "filter", "allowed", "regions", "sub_json", "envelope_exact")

    def __init__(
        self,
        client: Client,
        sub_id: str,
        flt: Filter,
        allowed: BaseGeometry | None = None,
        regions: frozenset[str] | None = None,
    ) -> None:
        """``regions``: the token's regions when it is limited to some (``allowed`` is their
        area), for what has no position to test against ``allowed`` (an alert)."""
        self.client = client
        self.sub_id = sub_id
        self.filter = flt
        self.allowed = allowed
        self.regions = regions
        self.sub_json = kept(orjson.dumps(sub_id))
        # the index's inline envelope test is the whole answer (a bbox the token fully sees)
        self.envelope_exact = flt.kind == "bbox" and allowed is None

    @property
    def envelope(self) -> Envelope | None:
        return self.filter.envelope

    @property
    def truck_ids(self) -> frozenset[str]:
        return self.filter.truck_ids

    def matches(self, truck_id: str, lat: float, lng: float) -> bool:
        if not self.filter.matches(truck_id, lat, lng):
            return False
        return self.allowed is None or bool(shapely.intersects_xy(self.allowed, lng, lat))


# One stream entry, decoded once: (seq, truck_id, lat, lng, prev, truck_json), ``prev`` being
# the truck's position before it. A plain tuple of atoms rather than an object: the garbage
# collector stops tracking such a tuple after it survives one collection, so the 100,000 the
# replay history keeps add nothing to a full collection's pause (as objects they made each one
# about 60 ms longer, and at full load a pause takes seconds to catch up on).
PositionEntry = tuple[bytes, str, float, float, tuple[float, float] | None, bytes]


def _num(raw: Any) -> float | None:
    if raw is None or raw == b"" or raw == "":
        return None
    v = float(raw)
    return v if math.isfinite(v) else None


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


_NAMES = ("truck_id", "lat", "lng", "speed_kph", "heading", "status", "ts_ms", "region")
_BYTES_NAMES = tuple(n.encode() for n in _NAMES)
_WRITER_ORDER = list(_BYTES_NAMES)  # the tracking job's XADD writes the fields in this order
_KNOWN_IDS_MAX = 1_000_000  # truck ids that passed the id check, to skip the regex next time
_known_ids: set[str] = set()

Fields = dict[Any, Any] | list[bytes]  # a hash (by name) or a stream entry's flat name/value list


def decode_truck(fields: Fields) -> dict[str, Any] | None:
    """A `stream:positions` entry (or `truck:` hash) as the protocol's truck object.

    ``fields`` is a mapping, whose names may be bytes (as redis-py returns them) or str (a
    bytes name wins), or a stream entry's raw ``[name, value, ...]`` list. None for an entry
    without a valid truck id or coordinates (the gateway counts and skips it rather than
    forwarding garbage).
    """
    if isinstance(fields, list):
        if fields[0::2] == _WRITER_ORDER:  # as the tracking job writes them: no lookups
            return _decode_values(fields[1::2])
        fields = dict(zip(fields[0::2], fields[1::2], strict=False))
    get = fields.get
    raw = [get(n) for n in _BYTES_NAMES]
    if None in raw:
        raw = [get(n) if v is None else v for n, v in zip(_NAMES, raw, strict=True)]
    return _decode_values(raw)


def _decode_values(raw: list[Any]) -> dict[str, Any] | None:
    """The truck object from the field values in ``_NAMES`` order (None where missing)."""
    tid_raw, lat_raw, lng_raw, speed_raw, heading_raw, status_raw, ts_raw, region_raw = raw
    try:
        lat, lng = float(lat_raw), float(lng_raw)  # None or b"" raise; NaN fails the range
        speed, heading, ts_ms = _num(speed_raw), _num(heading_raw), _num(ts_raw)
        truck_id = tid_raw.decode() if type(tid_raw) is bytes else _text(tid_raw)
        status = status_raw.decode() if type(status_raw) is bytes else _text(status_raw)
        region = region_raw.decode() if type(region_raw) is bytes else _text(region_raw)
    except (TypeError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    if truck_id not in _known_ids:
        if truck_id is None or not TRUCK_ID_RE.match(truck_id):
            return None
        if len(_known_ids) >= _KNOWN_IDS_MAX:
            _known_ids.clear()
        _known_ids.add(truck_id)
    truck: dict[str, Any] = {"truck_id": truck_id, "lat": lat, "lng": lng}
    if speed is not None:
        truck["speed_kph"] = speed
    if heading is not None:
        truck["heading"] = heading
    truck["status"] = status or "UNKNOWN"
    if ts_ms is not None:
        truck["ts_ms"] = int(ts_ms)
    if region:
        truck["region"] = region
    return truck


def _enqueue_all(
    subs: list[Subscription], truck_id: str, truck_json: bytes, seq: bytes, left: bool
) -> None:
    """One position frame per subscription, built once per distinct subscription id (frames
    differ only by ``sub``, so clients with the same id share the bytes)."""
    position = frames.position
    built: dict[bytes, bytes] = {}
    for sub in subs:
        frame = built.get(sub.sub_json)
        if frame is None:
            frame = built[sub.sub_json] = position(sub.sub_json, truck_json, seq, left)
        sub.client.enqueue((sub.sub_id, truck_id), frame)


class Router:
    """Subscriptions, truck positions and recent history; turns entries into client frames."""

    def __init__(
        self, replay_entries: int = 100_000, cell_deg: float = 1.0, start_seq: str = "0-0"
    ) -> None:
        self.index: SubscriptionIndex[Subscription] = SubscriptionIndex(cell_deg=cell_deg)
        self.last_pos: dict[str, tuple[float, float]] = {}
        self._history: deque[PositionEntry] = deque(maxlen=replay_entries)
        self.last_key: SeqKey = seq_key(start_seq)
        self._start_key = self.last_key
        self._evicted_seq: bytes | None = None  # newest entry the history has dropped
        self.skipped = 0

    @property
    def last_seq(self) -> str:
        return seq_text(self.last_key)

    @property
    def floor_key(self) -> SeqKey:
        """Entries at or below this key may be missing from the history (never read or
        evicted)."""
        if self._evicted_seq is not None:
            return seq_key(self._evicted_seq)
        return self._start_key

    def set_start(self, seq: str) -> None:
        """Where the stream reader starts (the stream's end at start-up): nothing before it
        can be replayed from memory."""
        self.last_key = self._start_key = seq_key(seq)
        self._evicted_seq = None

    # -- subscriptions -------------------------------------------------------------------
    def add(self, sub: Subscription) -> None:
        self.index.add(sub)

    def remove(self, sub: Subscription) -> None:
        self.index.remove(sub)

    def learn(self, trucks: Iterable[dict[str, Any]]) -> None:
        """Positions from a snapshot, for trucks the stream has not shown yet, so that their
        later move out of the area is noticed."""
        for t in trucks:
            self.last_pos.setdefault(t["truck_id"], (t["lat"], t["lng"]))

    # -- live stream ---------------------------------------------------------------------
    def on_batch(self, entries: Sequence[tuple[bytes, Fields]]) -> int:
        """Route one XREAD batch (ids ascending, as Redis returns them); the frames queued.

        Only the batch's first and last ids are parsed when the whole batch is new, which
        is the live case; otherwise each entry is checked on its own.
        """
        if not entries:
            return 0
        first = seq_key(entries[0][0])
        last = seq_key(entries[-1][0]) if len(entries) > 1 else first
        if first <= self.last_key or last < first:
            return sum(self.on_entry(seq, fields) for seq, fields in entries)
        self.last_key = last
        route = self._route
        n = 0
        seq = entries[0][0]
        try:
            for seq, fields in entries:
                n += route(seq, fields)
        except Exception:
            self.last_key = seq_key(seq)  # a reader that retries reads the rest again
            raise
        return n

    def on_entry(self, seq: bytes, fields: Fields) -> int:
        """Route one stream entry; the number of frames queued."""
        key = seq_key(seq)
        if key <= self.last_key:
            return 0  # already seen (a reader restart re-reads the last id)
        self.last_key = key
        return self._route(seq, fields)

    def _route(self, seq: bytes, fields: Fields) -> int:
        truck = decode_truck(fields)
        if truck is None:
            self.skipped += 1
            return 0
        truck_id, lat, lng = truck["truck_id"], truck["lat"], truck["lng"]
        prev = self.last_pos.get(truck_id)
        self.last_pos[truck_id] = (lat, lng)
        truck_json = kept(orjson.dumps(truck))
        history = self._history
        if len(history) == history.maxlen:
            self._evicted_seq = history[0][0]
        history.append((seq, truck_id, lat, lng, prev, truck_json))
        return self._fan_out(seq, truck_id, lat, lng, prev, truck_json)

    def _fan_out(
        self,
        seq: bytes,
        truck_id: str,
        lat: float,
        lng: float,
        prev: tuple[float, float] | None,
        truck_json: bytes,
    ) -> int:
        """Queue the entry for every interested subscription, and a ``left`` message for each
        one the truck's previous position was in and the new one is not."""
        if prev is None:
            inside = self.index.match(truck_id, lat, lng)
            left: list[Subscription] = []
        else:
            inside, left = self.index.match_move(truck_id, lat, lng, prev[0], prev[1])
        _enqueue_all(inside, truck_id, truck_json, seq, False)
        if left:
            _enqueue_all(left, truck_id, truck_json, seq, True)
        return len(inside) + len(left)

    # -- resume --------------------------------------------------------------------------
    def can_replay(self, since: str) -> bool:
        try:
            key = seq_key(since)
        except ValueError:
            return False
        return self.floor_key <= key <= self.last_key

    def replay(self, sub: Subscription, since: str) -> int:
        """Queue for ``sub`` what it missed after ``since`` (the client's queue coalesces it to
        the latest per truck). Call only when :meth:`can_replay` holds."""
        key = seq_key(since)
        n = 0
        for seq, truck_id, lat, lng, prev, truck_json in self._entries_after(key):
            if sub.matches(truck_id, lat, lng):
                left = False
            elif prev is not None and sub.matches(truck_id, prev[0], prev[1]):
                left = True
            else:
                continue
            sub.client.enqueue(
                (sub.sub_id, truck_id), frames.position(sub.sub_json, truck_json, seq, left)
            )
            n += 1
        return n

    def _entries_after(self, key: SeqKey) -> list[PositionEntry]:
        out: list[PositionEntry] = []
        for e in reversed(self._history):
            if seq_key(e[0]) <= key:
                break
            out.append(e)
        out.reverse()
        return out

    # -- alerts --------------------------------------------------------------------------
    def alert_targets(
        self, lat: float | None, lng: float | None, truck_id: str | None, region: str | None = None
    ) -> list[Client]:
        """Clients with a subscription containing the alert's place or watching its truck.

        With no place (neither the alert's nor its truck's last known one), a subscription
        limited to some regions gets it only if the alert's ``region`` (``payload.group``) is
        one of them: the token's regions bound what a client sees, placed on the map or not."""
        if (lat is None or lng is None) and truck_id is not None:
            pos = self.last_pos.get(truck_id)
            if pos is not None:
                lat, lng = pos
        clients: dict[int, Client] = {}
        if lat is not None and lng is not None:
            for sub in self.index.match(truck_id or "", lat, lng):
                clients[id(sub.client)] = sub.client
        elif truck_id is not None:
            for sub in self.index.candidates(truck_id, 0.0, 0.0):
                if truck_id in sub.truck_ids and (sub.regions is None or region in sub.regions):
                    clients[id(sub.client)] = sub.client
        return list(clients.values())
