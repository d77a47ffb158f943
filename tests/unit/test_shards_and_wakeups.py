"""The pure parts of the truck function: shards as the JVM computes them and wake-up seconds
(the stall rule: tests/unit/test_stall_fallback.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flink_jobs.tracking.shards import ShardOf, java_shard, java_string_hash
from flink_jobs.tracking.wakeups import next_tick, tick_period_ms, wake_second

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "java"),
    [
        ("", 0),
        ("hello", 99162322),
        ("Aa", 2112),
        ("BB", 2112),  # Java's classic collision
        ("polygenelubricants", -(2**31)),  # hashCode() == Integer.MIN_VALUE
        ("\N{GRINNING FACE}", 31 * 0xD83D + 0xDE00),  # one code point, two UTF-16 units
        ("é", 0xE9),
    ],
)
def test_the_hash_is_javas_string_hash_code(text: str, java: int) -> None:
    assert java_string_hash(text) == java


@given(st.text(max_size=40), st.integers(1, 64))
def test_a_shard_is_a_floor_modulo_in_range_and_remembered_as_computed(
    key: str, shards: int
) -> None:
    shard = java_shard(key, shards)
    assert 0 <= shard < shards
    assert (java_string_hash(key) - shard) % shards == 0
    shard_of = ShardOf(shards, limit=2)
    assert shard_of(key) == shard_of(key) == shard


def test_the_shard_memory_starts_over_past_its_limit() -> None:
    shard_of = ShardOf(8, limit=2)
    for key in ("a", "b", "c"):
        shard_of(key)
    assert len(shard_of._known) == 1  # cleared at the third key, which it then remembered


def test_a_wake_up_rounds_up_to_its_whole_second() -> None:
    assert wake_second(12_345) == 13_000
    assert wake_second(13_000) == 13_000
    assert wake_second(13_001) == 14_000


def test_ticks_are_aligned_to_the_wall_clock() -> None:
    assert tick_period_ms(30_000) == 5000 and tick_period_ms(200) == 1000
    assert next_tick(12_345, 5000) == 15_000 and next_tick(15_000, 5000) == 20_000
