"""The delay job's typed keyed state reads what checkpoints of earlier versions hold, and stores
the layout they hold, so upgrades restore in both directions of the typed change."""

from __future__ import annotations

import pickle

import pytest

from flink_jobs.delay.state import FeedBox, ShipmentBox
from udfs.feed_order import NOTHING_RELEASED
from udfs.shipment_state import ShipmentState
from udfs.truck_speed import TruckFeed

pytestmark = pytest.mark.unit


def test_a_new_truck_starts_with_no_timer_and_nothing_released() -> None:
    box = FeedBox.from_stored("T1", None)
    assert box == FeedBox(TruckFeed("T1"), None, None, NOTHING_RELEASED)


def test_a_bare_feed_from_before_inputs_were_held_restores() -> None:
    feed = TruckFeed("T1")
    assert FeedBox.from_stored("T1", feed) == FeedBox(feed)


def test_a_feed_box_round_trips_through_its_stored_list() -> None:
    box = FeedBox(TruckFeed("T1"), 5000, (1_000_000, 4000), 999_999)
    stored = pickle.loads(pickle.dumps(box.to_stored()))  # as PyFlink keeps it
    assert stored[1:] == [5000, 1_000_000, 4000, 999_999]  # the layout checkpoints hold
    assert FeedBox.from_stored("T1", stored) == box


def test_a_shipment_box_round_trips_and_reads_the_stored_layout() -> None:
    assert ShipmentBox.from_stored("S1", None) == ShipmentBox(ShipmentState("S1"))
    box = ShipmentBox(ShipmentState("S1"), 7000, 9000, (6000, 100), 12_000)
    stored = pickle.loads(pickle.dumps(box.to_stored()))
    assert stored[1:] == [7000, 9000, 6000, 100, 12_000]
    assert ShipmentBox.from_stored("S1", stored) == box
    # the layout before refreshes (five elements) reads with no refresh timer
    old = ShipmentBox.from_stored("S1", stored[:5])
    assert old.refresh_at is None and old.reference == (6000, 100)
    # a timer never set stores no reference
    assert ShipmentBox(ShipmentState("S2")).to_stored()[1:] == [None, None, None, None, None]
    assert (
        ShipmentBox.from_stored("S2", [ShipmentState("S2"), None, None, None, None]).reference
        is None
    )
