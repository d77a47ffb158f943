"""The truck functions raise the cycle collector's young threshold, and never lower it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from flink_jobs.runtime.gc_tuning import YOUNG_THRESHOLD, relax_young_collections

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def restored_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_young_threshold_is_raised_and_the_older_ones_kept() -> None:
    gc.set_threshold(700, 10, 10)
    relax_young_collections()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)


def test_a_higher_threshold_set_by_someone_else_is_kept() -> None:
    gc.set_threshold(YOUNG_THRESHOLD * 2, 5, 5)
    relax_young_collections()
    assert gc.get_threshold() == (YOUNG_THRESHOLD * 2, 5, 5)


def test_opening_the_truck_function_raises_it() -> None:
    from tests.unit.test_truck_function import opened

    gc.set_threshold(700, 10, 10)
    fn = opened()[0]
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    fn.close()
