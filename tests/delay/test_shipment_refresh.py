"""The shipment operator's refresh timer (issue 29), on stand-ins for PyFlink's context: every
``--alert-refresh-s`` a shipment sends again its open triggers and its Redis values."""

from __future__ import annotations

from typing import Any

import pytest

from flink_jobs.delay.settings import DelaySettings
from flink_jobs.delay.shipments import ALERT_TAG, ShipmentFunction
from flink_jobs.runtime.refresh import refresh_slot
from tests.unit.flink_fakes import FakeContext, FakeRuntime
from udfs.models import ScanType
from udfs.shipment_state import DelayCleared, DelayScore, RegionShipmentCounted

from .helpers import CFG, HOUR, MIN, T0, scan

pytestmark = pytest.mark.unit

P = T0 + 12 * HOUR  # promised_by of the default pickup
PERIOD = 60_000
WALL = 1_800_000_000_000  # the operator's wall clock at the start


class Shipment:
    """One shipment's operator, its state and its clock."""

    def __init__(self, **settings: Any) -> None:
        self.now = WALL
        self.fn = ShipmentFunction(
            DelaySettings(alert_refresh_s=PERIOD // 1000, **settings), CFG, clock=lambda: self.now
        )
        self.runtime = FakeRuntime()
        self.fn.open(self.runtime)

    def ctx(self, watermark: int, domain: str = "EVENT_TIME") -> FakeContext:
        return FakeContext("S1", self.now, watermark, domain)

    def element(self, event: Any, watermark: int) -> tuple[list[Any], FakeContext]:
        ctx = self.ctx(watermark)
        return list(self.fn.process_element(event, ctx)), ctx

    def timer(self, at: int, domain: str, watermark: int) -> tuple[list[Any], FakeContext]:
        ctx = self.ctx(watermark, domain)
        return list(self.fn.on_timer(at, ctx)), ctx

    def count(self, name: str) -> int:
        return sum(c.count for k, c in self.runtime.counters.items() if k.split(".")[-1] == name)


def _alert_rows(out: list[Any]) -> list[str]:
    return [row[1] for tag, row in (o for o in out if isinstance(o, tuple)) if tag is ALERT_TAG]


def _processing(ctx: FakeContext) -> list[int]:
    return [at for kind, _, at in ctx.registered if kind == "processing"]


def test_a_late_shipment_reasserts_its_trigger_every_period() -> None:
    op = Shipment()
    _, ctx = op.element(scan("S1", 1, ScanType.PICKED_UP, T0), watermark=T0)
    slot = refresh_slot("S1", WALL, PERIOD)
    assert slot in _processing(ctx) and WALL < slot <= WALL + PERIOD
    out, _ = op.timer(P + 3 * HOUR, "EVENT_TIME", watermark=P + 3 * HOUR)  # no such timer
    assert out == []
    late, _ = op.element(scan("S1", 2, ScanType.ARRIVED_HUB, P + 3 * HOUR), P + 3 * HOUR)
    sent = _alert_rows(late)
    assert sent and '"trigger"' in sent[-1]
    op.now = slot
    again, ctx = op.timer(slot, "PROCESSING_TIME", watermark=P + 3 * HOUR)
    assert _alert_rows(again) == [sent[-1]]  # the same bytes as the last trigger sent
    assert DelayScore("S1", 3) in again and RegionShipmentCounted("WEST", "S1") in again
    assert _processing(ctx) == [slot + PERIOD]  # the next refresh
    assert op.count("reasserted_alerts") == 1
    assert op.count("alerts") == len(sent)  # re-assertions are not counted as new alerts


def test_other_processing_timers_reassert_nothing() -> None:
    op = Shipment()
    op.element(scan("S1", 1, ScanType.PICKED_UP, T0), watermark=T0)
    slot = refresh_slot("S1", WALL, PERIOD)
    out, ctx = op.timer(slot + 1, "PROCESSING_TIME", watermark=T0)
    assert out == [] and ctx.registered == []


def test_a_dropped_shipment_sends_its_final_values_once_then_its_timer_is_idle() -> None:
    op = Shipment()
    op.element(scan("S1", 1, ScanType.PICKED_UP, T0), watermark=T0)
    slot = refresh_slot("S1", WALL, PERIOD)
    done = T0 + 2 * HOUR + CFG.retain_after_delivery_s * 1000
    out, _ = op.element(scan("S1", 2, ScanType.DELIVERED, T0 + 2 * HOUR), watermark=done)
    assert op.runtime.states["shipment"].stored is None  # dropped
    assert DelayCleared("S1") in out and RegionShipmentCounted("WEST", "S1") in out
    op.now = slot
    out, ctx = op.timer(slot, "PROCESSING_TIME", watermark=done)
    assert out == [] and ctx.registered == []
    assert op.runtime.states["shipment"].stored is None  # the timer did not bring it back


def test_a_shipment_stored_before_refreshes_starts_its_chain_at_its_next_input() -> None:
    op = Shipment()
    op.element(scan("S1", 1, ScanType.PICKED_UP, T0), watermark=T0)
    stored = op.runtime.states["shipment"].stored
    op.runtime.states["shipment"].stored = stored[:5]  # the layout of the previous version
    op.now = WALL + 10 * MIN
    _, ctx = op.element(scan("S1", 2, ScanType.ARRIVED_HUB, T0 + HOUR), watermark=T0)
    assert refresh_slot("S1", op.now, PERIOD) in _processing(ctx)


@pytest.mark.parametrize("settings", [{"bounded": True}, {"alert_refresh_s": 0}])
def test_no_refresh_when_bounded_or_switched_off(settings: dict[str, Any]) -> None:
    op = Shipment()
    op.fn = ShipmentFunction(
        DelaySettings(**{"alert_refresh_s": PERIOD // 1000, **settings}), CFG, clock=lambda: WALL
    )
    op.fn.open(op.runtime)
    _, ctx = op.element(scan("S1", 1, ScanType.PICKED_UP, T0), watermark=T0)
    assert refresh_slot("S1", WALL, PERIOD) not in _processing(ctx)


def test_refresh_slots_spread_keys_over_the_period_and_agree_across_processes() -> None:
    slots = {refresh_slot(f"S{i}", WALL, PERIOD) - WALL for i in range(1000)}
    assert len(slots) > 900 and all(0 < s <= PERIOD for s in slots)
    assert refresh_slot("S1", WALL, PERIOD) == refresh_slot("S1", WALL + 1, PERIOD)
    first = refresh_slot("S1", WALL, PERIOD)
    assert refresh_slot("S1", first, PERIOD) == first + PERIOD


def test_a_refresh_due_during_a_downtime_is_not_pushed_back_by_an_input() -> None:
    """Restored after a long downtime, the shipment's refresh timer is overdue and fires at
    once; an input read before it fires must not replace it with a later one."""
    op = Shipment()
    op.element(scan("S1", 1, ScanType.PICKED_UP, T0), watermark=T0)
    slot = refresh_slot("S1", WALL, PERIOD)
    op.now = WALL + 60 * MIN  # the restore, an hour later
    _, ctx = op.element(scan("S1", 2, ScanType.ARRIVED_HUB, T0 + HOUR), watermark=T0)
    assert refresh_slot("S1", op.now, PERIOD) not in _processing(ctx)  # no later refresh
    assert op.runtime.states["shipment"].stored[5] == slot
    out, ctx = op.timer(slot, "PROCESSING_TIME", watermark=T0)
    assert RegionShipmentCounted("WEST", "S1") in out  # the overdue refresh went out
    assert _processing(ctx) == [refresh_slot("S1", op.now, PERIOD)]
