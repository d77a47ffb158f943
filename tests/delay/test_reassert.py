"""Re-assertion (issue 29): a shipment sends again what it reported, changing nothing, and
Redis converges on its state whatever a replay down another path left there."""

from __future__ import annotations

import copy

import pytest

from udfs.models import AlertEvent, ScanType
from udfs.shipment_state import (
    LATE,
    NO_SCAN,
    DelayCleared,
    DelayScore,
    RegionDelayHours,
    RegionShipmentCounted,
    ShipmentState,
    advance,
    reassert,
    step,
)

from .helpers import CFG, HOUR, MIN, T0, RedisModel, scan

pytestmark = pytest.mark.unit

P = T0 + 12 * HOUR  # promised_by of the default pickup


def _late_shipment() -> tuple[ShipmentState, list[object]]:
    st, out = step(None, scan("S1", 1, ScanType.PICKED_UP, T0), CFG)
    st, more = advance(st, P + 3 * HOUR, CFG)
    return st, out + more


def test_open_incidents_are_reasserted_as_their_last_trigger() -> None:
    st, out = _late_shipment()
    last = {o.alert_class: o for o in out if isinstance(o, AlertEvent)}
    before = copy.deepcopy(st)
    again = reassert(st, CFG)
    assert st == before  # changes nothing
    triggers = [o for o in again if isinstance(o, AlertEvent)]
    assert [t.event_action for t in triggers] == ["trigger"]
    (late,) = triggers
    assert late.alert_class == LATE and late.dedup_key == "shipment_late:S1"
    assert late.to_json() == last[LATE].to_json()  # the same bytes as the escalation sent
    assert DelayScore("S1", 3) in again and RegionShipmentCounted("WEST", "S1") in again


def test_nothing_open_reasserts_only_redis_values() -> None:
    st, _ = _late_shipment()
    st, _ = step(st, scan("S1", 2, ScanType.DELIVERED, P + 90 * MIN), CFG)
    again = reassert(st, CFG)
    assert not [o for o in again if isinstance(o, AlertEvent)]
    assert again == [
        DelayCleared("S1"),
        RegionShipmentCounted("WEST", "S1"),
        RegionDelayHours("WEST", "S1", 1.5),
    ]


def test_every_open_class_is_reasserted() -> None:
    st, _ = step(None, scan("S1", 1, ScanType.PICKED_UP, T0), CFG)
    st, _ = advance(st, P + 30 * 60 * MIN, CFG)  # late and no scan for 30 h
    assert set(st.open) == {LATE, NO_SCAN}
    classes = sorted(o.alert_class for o in reassert(st, CFG) if isinstance(o, AlertEvent))
    assert classes == sorted([LATE, NO_SCAN])


def test_redis_converges_on_the_state_after_a_divergent_replay() -> None:
    """Before a crash the shipment went late (a wall-clock fallback) and Redis got its score;
    the replay read the delivery first, so the restored state never went late and sends no
    change: only the re-assertion removes the member and sets the hours right."""
    model = RedisModel()
    late, out = _late_shipment()
    model.apply(out)
    assert model.delays == {"shipment:S1": 3}
    # the replay: pickup, then the (early) delivery, then time passes
    st, out = step(None, scan("S1", 1, ScanType.PICKED_UP, T0), CFG)
    st, more = step(st, scan("S1", 2, ScanType.DELIVERED, P - HOUR), CFG)
    st, later = advance(st, P + 3 * HOUR, CFG)
    replayed = RedisModel()
    replayed.apply(out + more + later)
    assert not st.open and st.score == 0
    model.apply(reassert(st, CFG))
    assert model.delays == replayed.delays == {}
    assert model.region == replayed.region
