"""A truck's state as compact JSON, the form the bundled tracking job checkpoints it in.

Every checkpoint writes back each truck changed since the one before
(flink_jobs.tracking.shard_state),
and PyFlink pickles every map-state value it is handed. Pickling ``[TruckState, wake second]``
takes about 10 µs (a dataclass and its buffered pings, each through ``__reduce__``), and a
py-spy profile of the running job found the write-back in about a seventh of the truck
function's samples. The same values as one JSON array through orjson, and Flink's pickling of
that ``bytes``, take 4.7 µs (2.1x less; reading back is about the same, 10.4 against 11.4).

The array is ``[FORMAT, wake second, [field values in declaration order]]``, buffered pings as
arrays of their fields. JSON floats written by orjson read back bit for bit (shortest
round-trip form); tuples come back as tuples. Every value is finite (validation refuses
NaN and infinities, and nothing derived from them is kept), which JSON requires.
``FORMAT`` names the field layout: a change to :class:`~udfs.truck_state.TruckState`'s fields
needs a new format number and a reader of the old one, or checkpoints taken before it do not
restore. Format 2 (2026-11-28) appended ``written_rev``; a format 1 array
reads with its default (no write since the restore). Format 2 as first landed (dff7410, for an
hour) also held ``written_ts``, which is always ``pos_ts``: such state is refused by name.
Format 3 (2026-11-28) holds the duplicate fingerprints as integers
(:func:`udfs.truck_state.fingerprint`) instead of ``[ts, lat, lng]`` arrays; formats 1 and 2
read with theirs converted. Format 4 (2026-12-07) appended what an open alert's trigger said
(``offline_group``, ``stop_group``, ``stop_lat``, ``stop_lng``), so it can be sent again
exactly (:func:`udfs.truck_state.open_alerts`); older arrays read with their defaults.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any

import orjson

from udfs.models import Ping
from udfs.truck_state import TruckState, fingerprint

FORMAT = 4

_FIELDS = [f.name for f in fields(TruckState)]
_state_values = attrgetter(*_FIELDS)
_ping_values = attrgetter(*[f.name for f in fields(Ping)])
_PENDING = _FIELDS.index("pending")
_CENSUS = _FIELDS.index("census")
_RECENT = _FIELDS.index("recent")
# The fields each format holds, a prefix of TruckState's: it gives the later ones defaults.
_FIELD_COUNTS = {
    1: _FIELDS.index("rejections_in_row") + 1,
    2: _FIELDS.index("written_rev") + 1,
    3: _FIELDS.index("written_rev") + 1,
    FORMAT: len(_FIELDS),
}


class UnknownStateFormat(ValueError):
    """Stored truck state written in a layout this version cannot read."""


def encode_truck(state: TruckState, wake_second: int | None) -> bytes:
    """``state`` and the second its truck is indexed under, as one JSON array."""
    values = list(_state_values(state))
    if state.pending:
        values[_PENDING] = [_ping_values(p) for p in state.pending]
    return orjson.dumps([FORMAT, wake_second, values])


def decode_truck(data: bytes) -> tuple[TruckState, int | None]:
    """The inverse of :func:`encode_truck`."""
    layout, wake_second, values = _parse(data)
    if values[_PENDING]:
        values[_PENDING] = [Ping(*p) for p in values[_PENDING]]
    if values[_CENSUS] is not None:
        values[_CENSUS] = tuple(values[_CENSUS])
    if layout < 3 and values[_RECENT]:  # [ts, lat, lng] arrays before format 3
        values[_RECENT] = [fingerprint(*r) for r in values[_RECENT]]
    return TruckState(*values), wake_second


def _parse(data: bytes) -> tuple[int, int | None, list[Any]]:
    """The format, wake second and field values of a stored array, or UnknownStateFormat."""
    decoded = orjson.loads(data)
    if not (
        isinstance(decoded, list)
        and len(decoded) == 3
        and isinstance(decoded[0], int)
        and isinstance(decoded[2], list)
        and _FIELD_COUNTS.get(decoded[0]) == len(decoded[2])
    ):
        head = decoded[0] if isinstance(decoded, list) and decoded else decoded
        raise UnknownStateFormat(
            f"truck state in format {head!r}; this version reads "
            f"formats 1 to {FORMAT} ({len(_FIELDS)} fields)"
        )
    return decoded[0], decoded[1], decoded[2]
