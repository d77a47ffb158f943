"""Spatial index of subscriptions: a position finds the subscriptions interested in it directly,
so matching costs O(subscriptions near the point), not O(clients).

A uniform grid (``cell_deg`` degrees) maps each cell to the subscriptions whose envelope
overlaps it; a position looks at one cell and runs the exact test on those candidates only.
Subscriptions covering more than ``max_cells`` cells (a whole-country view) go to a short
``wide`` list checked for every point, so a zoomed-out client cannot blow up the grid.
``truck_ids`` subscriptions are indexed by truck id. Pure data structure, no I/O.

Each cell keeps, per subscription, its envelope next to it, and ``match`` tests the envelope
inline (no call per candidate); only subscriptions whose envelope is not the whole answer
(polygons, circles, a token's regions: ``envelope_exact`` false or absent) get their own
``matches`` call after that. This loop is the gateway's hottest: it runs for every stream entry
over every subscription near the truck. :meth:`SubscriptionIndex.match_move` answers "who wants
the new position, and who had the old one and does not want the new" in one pass over the
cell, since a truck's previous fix (a few seconds ago) is nearly always in the same cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from ws_gateway.filters import Envelope


class Indexed(Protocol):
    """What the index needs to know about a subscription."""

    @property
    def envelope(self) -> Envelope | None: ...

    @property
    def truck_ids(self) -> frozenset[str]: ...

    def matches(self, truck_id: str, lat: float, lng: float) -> bool: ...


S = TypeVar("S", bound=Indexed)

# (min_lng, min_lat, max_lng, max_lat, subscription, the envelope test is the whole test)
_Entry = tuple[float, float, float, float, S, bool]


class _Cell(Generic[S]):
    """The subscriptions overlapping one grid cell; ``entries`` is rebuilt lazily after a
    change, so adding and removing stay O(1) and matching iterates a plain tuple."""

    __slots__ = ("members", "entries")

    def __init__(self) -> None:
        self.members: dict[int, _Entry[S]] = {}
        self.entries: tuple[_Entry[S], ...] | None = None

    def get(self) -> tuple[_Entry[S], ...]:
        entries = self.entries
        if entries is None:
            entries = self.entries = tuple(self.members.values())
        return entries


class SubscriptionIndex(Generic[S]):
    """Grid + truck-id index over subscriptions (compared by identity)."""

    def __init__(self, cell_deg: float = 1.0, max_cells: int = 4096) -> None:
        self.cell_deg = cell_deg
        self.max_cells = max_cells
        self._cells: dict[tuple[int, int], _Cell[S]] = {}
        self._wide: set[S] = set()
        self._by_truck: dict[str, set[S]] = {}
        self._where: dict[int, list[tuple[int, int]] | None] = {}  # id(sub) -> its cells

    def __len__(self) -> int:
        return len(self._where)

    def _cell_range(self, env: Envelope) -> tuple[int, int, int, int]:
        d = self.cell_deg
        return (
            math.floor(env[0] / d),
            math.floor(env[1] / d),
            math.floor(env[2] / d),
            math.floor(env[3] / d),
        )

    def add(self, sub: S) -> None:
        if id(sub) in self._where:
            self.remove(sub)
        if sub.truck_ids:
            for t in sub.truck_ids:
                self._by_truck.setdefault(t, set()).add(sub)
            self._where[id(sub)] = None
            return
        env = sub.envelope
        if env is None:
            raise ValueError("a geographic subscription needs an envelope")
        x0, y0, x1, y1 = self._cell_range(env)
        if (x1 - x0 + 1) * (y1 - y0 + 1) > self.max_cells:
            self._wide.add(sub)
            self._where[id(sub)] = []
            return
        cells = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        entry: _Entry[S] = (
            env[0],
            env[1],
            env[2],
            env[3],
            sub,
            bool(getattr(sub, "envelope_exact", False)),
        )
        for c in cells:
            cell = self._cells.get(c)
            if cell is None:
                cell = self._cells[c] = _Cell()
            cell.members[id(sub)] = entry
            cell.entries = None
        self._where[id(sub)] = cells

    def remove(self, sub: S) -> None:
        cells = self._where.pop(id(sub), None)
        if cells is None:
            for t in sub.truck_ids:
                subs = self._by_truck.get(t)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._by_truck[t]
            return
        self._wide.discard(sub)
        for c in cells:
            cell = self._cells.get(c)
            if cell is not None and cell.members.pop(id(sub), None) is not None:
                cell.entries = None
                if not cell.members:
                    del self._cells[c]

    def candidates(self, truck_id: str, lat: float, lng: float) -> Iterable[S]:
        """Subscriptions that may match (a superset of :meth:`match`)."""
        d = self.cell_deg
        cell = self._cells.get((math.floor(lng / d), math.floor(lat / d)))
        by_truck = self._by_truck.get(truck_id)
        out: list[S] = []
        if cell:
            out.extend(e[4] for e in cell.get())
        if self._wide:
            out.extend(self._wide)
        if by_truck:
            out.extend(by_truck)
        return out

    def match_move(
        self, truck_id: str, lat: float, lng: float, prev_lat: float, prev_lng: float
    ) -> tuple[list[S], list[S]]:
        """``(inside, left)``: the subscriptions that want the truck at its new position, and
        those that wanted it at ``prev`` and do not want it now (``match(new)`` and
        ``match(prev) - match(new)``, in one pass when both positions share a cell)."""
        d = self.cell_deg
        cells = self._cells
        cell = cells.get((math.floor(lng / d), math.floor(lat / d)))
        prev_cell = cells.get((math.floor(prev_lng / d), math.floor(prev_lat / d)))
        inside: list[S] = []
        left: list[S] = []
        if cell is not None:
            for x0, y0, x1, y1, sub, exact in cell.get():
                if (
                    x0 <= lng <= x1
                    and y0 <= lat <= y1
                    and (exact or sub.matches(truck_id, lat, lng))
                ):
                    inside.append(sub)
                elif (
                    x0 <= prev_lng <= x1
                    and y0 <= prev_lat <= y1
                    and (exact or sub.matches(truck_id, prev_lat, prev_lng))
                ):
                    left.append(sub)
        if prev_cell is not None and prev_cell is not cell:
            # a subscription of this cell only cannot contain the new position (it would be
            # in the new position's cell), so containing the old one means it was left
            in_new_cell = cell.members if cell is not None else {}
            for x0, y0, x1, y1, sub, exact in prev_cell.get():
                if (
                    id(sub) not in in_new_cell
                    and x0 <= prev_lng <= x1
                    and y0 <= prev_lat <= y1
                    and (exact or sub.matches(truck_id, prev_lat, prev_lng))
                ):
                    left.append(sub)
        others: list[S] = list(self._wide) if self._wide else []
        if self._by_truck:
            by_truck = self._by_truck.get(truck_id)
            if by_truck:
                others.extend(by_truck)
        for sub in others:
            if sub.matches(truck_id, lat, lng):
                inside.append(sub)
            elif sub.matches(truck_id, prev_lat, prev_lng):
                left.append(sub)
        return inside, left

    def match(self, truck_id: str, lat: float, lng: float) -> list[S]:
        """Subscriptions that want this truck at this position."""
        d = self.cell_deg
        cell = self._cells.get((math.floor(lng / d), math.floor(lat / d)))
        out: list[S] = []
        if cell is not None:
            for x0, y0, x1, y1, sub, exact in cell.get():
                if (
                    x0 <= lng <= x1
                    and y0 <= lat <= y1
                    and (exact or sub.matches(truck_id, lat, lng))
                ):
                    out.append(sub)
        if self._wide:
            out.extend(s for s in self._wide if s.matches(truck_id, lat, lng))
        if self._by_truck:
            by_truck = self._by_truck.get(truck_id)
            if by_truck:
                out.extend(s for s in by_truck if s.matches(truck_id, lat, lng))
        return out
