"""Stand-ins for the slices of PyFlink's keyed-function context, runtime context (state and
metric group) that the job helpers use."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any


class FakeCounter:
    """A Flink counter: the calls that reached it, and its count."""

    def __init__(self) -> None:
        self.calls = 0
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.calls += 1
        self.count += n

    def dec(self, n: int = 1) -> None:
        self.calls += 1
        self.count -= n


class FakeGroup:
    """The two calls of PyFlink's MetricGroup that OperatorCounts uses. Counters are kept, for
    the whole tree of groups, by their Flink identifier below the operator: the group names and
    key/value pairs of their scope, then the name, as ``fleetpulse.reason.bad_type.dead_letters``;
    ``groups`` lists every group added (``key=value`` for a key/value one)."""

    def __init__(
        self,
        scope: tuple[str, ...] = (),
        counters: dict[str, FakeCounter] | None = None,
        groups: list[str] | None = None,
    ) -> None:
        self.scope = scope
        self.counters: dict[str, FakeCounter] = {} if counters is None else counters
        self.groups: list[str] = [] if groups is None else groups

    def add_group(self, name: str, extra: str | None = None) -> FakeGroup:
        self.groups.append(name if extra is None else f"{name}={extra}")
        scope = self.scope + ((name,) if extra is None else (name, extra))
        return FakeGroup(scope, self.counters, self.groups)

    def counter(self, name: str) -> FakeCounter:
        identifier = ".".join((*self.scope, name))
        assert identifier not in self.counters, "registered twice"
        self.counters[identifier] = FakeCounter()
        return self.counters[identifier]


class FakeValueState:
    def __init__(self) -> None:
        self.stored: Any = None

    def value(self) -> Any:
        return self.stored

    def update(self, value: Any) -> None:
        self.stored = value

    def clear(self) -> None:
        self.stored = None


class FakeListState:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, value: Any) -> None:
        self.items.append(value)

    def get(self) -> list[Any]:
        return list(self.items)

    def clear(self) -> None:
        self.items.clear()


class FakeMapState:
    """Values are copied in and out, as PyFlink's pickled values are: a change to a value read
    reaches the state only when put."""

    def __init__(self) -> None:
        self.stored: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        return copy.deepcopy(self.stored.get(key))

    def put(self, key: Any, value: Any) -> None:
        self.stored[key] = copy.deepcopy(value)

    def put_all(self, values: dict[Any, Any]) -> None:
        self.stored.update(copy.deepcopy(values))

    def remove(self, key: Any) -> None:
        self.stored.pop(key, None)

    def __iter__(self) -> Any:
        return iter(list(self.stored))

    def keys(self) -> Any:
        return iter(list(self.stored))

    def items(self) -> Any:
        return iter(copy.deepcopy(list(self.stored.items())))


class FakeRuntime:
    """One key's state per descriptor name, and a metric group that keeps its counters."""

    def __init__(self) -> None:
        self.states: dict[str, Any] = {}
        self.metrics = FakeGroup()
        self.counters = self.metrics.counters

    def get_state(self, descriptor: Any) -> FakeValueState:
        return self.states.setdefault(descriptor.get_name(), FakeValueState())

    def get_list_state(self, descriptor: Any) -> FakeListState:
        return self.states.setdefault(descriptor.get_name(), FakeListState())

    def get_map_state(self, descriptor: Any) -> FakeMapState:
        return self.states.setdefault(descriptor.get_name(), FakeMapState())

    def get_metrics_group(self) -> FakeGroup:
        return self.metrics


class FakeContext:
    """A KeyedProcessFunction context and its timer service in one, recording registrations
    as ``(kind, key, time)`` and deletions in ``deleted``."""

    def __init__(
        self, key: Any = None, now: int = 0, watermark: int = -(2**63), domain: str = "EVENT_TIME"
    ) -> None:
        self.key = key
        self.now = now
        self.watermark = watermark
        self.domain = domain
        self.registered: list[tuple[str, Any, int]] = []
        self.deleted: list[tuple[str, Any, int]] = []

    def get_current_key(self) -> Any:
        return self.key

    def timer_service(self) -> FakeContext:
        return self

    def current_processing_time(self) -> int:
        return self.now

    def register_processing_time_timer(self, at: int) -> None:
        self.registered.append(("processing", self.key, at))

    def register_event_time_timer(self, at: int) -> None:
        self.registered.append(("event", self.key, at))

    def delete_event_time_timer(self, at: int) -> None:
        self.deleted.append(("event", self.key, at))

    def current_watermark(self) -> int:
        return self.watermark

    def time_domain(self) -> Any:
        """As on an OnTimerContext: the domain of the timer firing (``EVENT_TIME`` or
        ``PROCESSING_TIME``)."""
        return SimpleNamespace(name=self.domain)
