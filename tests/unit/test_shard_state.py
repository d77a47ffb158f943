"""WriteBackState: a shard's map state read once, changed in memory, written back at the
checkpoint marker; spilled shards go through Flink's state per call."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flink_jobs.tracking.shard_state import WriteBackState
from tests.unit.flink_fakes import FakeMapState

pytestmark = pytest.mark.unit


class KeyedMapState:
    """One FakeMapState per shard, the one of ``current`` answering (PyFlink scopes map state
    to the current key); counts the calls."""

    def __init__(self) -> None:
        self.by_shard: dict[int, FakeMapState] = {}
        self.current = 0
        self.calls: list[tuple[int, str]] = []

    def of(self, shard: int) -> dict[Any, Any]:
        return self.by_shard.setdefault(shard, FakeMapState()).stored

    def __getattr__(self, name: str) -> Any:
        self.calls.append((self.current, name))
        return getattr(self.by_shard.setdefault(self.current, FakeMapState()), name)


def at(state: KeyedMapState, shard: int) -> int:
    state.current = shard
    return shard


def test_a_shard_is_read_once_and_written_back_only_at_write_back() -> None:
    flink = KeyedMapState()
    flink.of(1)["a"] = [1]
    store: WriteBackState[str, list[int]] = WriteBackState(flink)
    assert store.get(at(flink, 1), "a") == [1]
    assert store.get(1, "b") is None
    store.put_all(1, {"b": [2]})
    store.remove(1, "a")
    assert flink.calls == [(1, "items")]
    assert flink.of(1) == {"a": [1]}
    store.write_back(1)
    assert flink.of(1) == {"b": [2]}
    store.write_back(1)  # nothing changed since
    assert [name for _, name in flink.calls] == ["items", "put_all", "remove"]


def test_past_the_limit_the_shard_written_last_spills_to_flinks_state() -> None:
    flink = KeyedMapState()
    store: WriteBackState[str, int] = WriteBackState(flink, limit=3)
    store.put_all(at(flink, 0), {"a": 0, "b": 0})
    store.put_all(at(flink, 1), {"c": 1, "d": 1})  # 4 held: shard 1 spills, written back
    assert flink.of(1) == {"c": 1, "d": 1} and flink.of(0) == {}
    assert store.size == 2 and store.spilled == {1}
    flink.calls.clear()
    assert store.get(1, "c") == 1  # from now on per key, through the state
    store.put_all(1, {"e": 1})
    assert flink.of(1)["e"] == 1
    assert [name for _, name in flink.calls] == ["get", "put_all"]
    store.put_all(at(flink, 0), {"f": 0})  # shard 0 stays in memory: 3 held
    assert flink.of(0) == {}


OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "remove", "write_back"]),
        st.integers(0, 2),
        st.integers(0, 5),
        st.integers(),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(OPS, st.one_of(st.none(), st.integers(0, 8)))
def test_reads_always_see_the_latest_write_and_write_back_leaves_the_state_equal(
    ops: list[tuple[str, int, int, int]], limit: int | None
) -> None:
    flink = KeyedMapState()
    store: WriteBackState[int, int] = WriteBackState(flink, limit=limit)
    model: dict[int, dict[int, int]] = {0: {}, 1: {}, 2: {}}
    for op, shard, key, value in ops:
        at(flink, shard)
        if op == "put":
            store.put_all(shard, {key: value})
            model[shard][key] = value
        elif op == "remove":
            store.remove(shard, key)
            model[shard].pop(key, None)
        else:
            store.write_back(shard)
            assert flink.of(shard) == model[shard]
        assert store.get(shard, key) == model[shard].get(key)
        assert sorted(store.keys(shard)) == sorted(model[shard])
        if limit is not None:
            assert store.size <= limit
    for shard in model:
        store.write_back(at(flink, shard))
        assert flink.of(shard) == model[shard]
