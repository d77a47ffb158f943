"""CPU lists for pinning the Flink processes: the kernel's cpulist format, checked against the
CPUs this process may use, spread one per TaskManager."""

from __future__ import annotations

import pytest

from flink_jobs.runtime import affinity
from flink_jobs.runtime.affinity import AffinityError, format_cpu_list, parse_cpu_list

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("", set()),
        ("0", {0}),
        ("0,2", {0, 2}),
        ("0-3", {0, 1, 2, 3}),
        (" 1 , 4-5 ", {1, 4, 5}),
        ("3,3", {3}),
    ],
)
def test_cpu_lists_parse_like_the_kernels(text: str, cpus: set[int]) -> None:
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["x", "1-", "-1", "3-1", "0.5", "0-a"])
def test_a_bad_cpu_list_says_which_part(text: str) -> None:
    with pytest.raises(AffinityError, match="is not a CPU"):
        parse_cpu_list(text)


def test_a_cpu_list_of_only_commas_is_refused_not_taken_for_no_pinning() -> None:
    with pytest.raises(AffinityError, match="names no CPU"):
        parse_cpu_list(" , ")


def test_cpu_lists_format_as_ranges() -> None:
    assert format_cpu_list([5, 0, 1, 2]) == "0-2,5"
    assert format_cpu_list([1]) == "1"
    assert format_cpu_list([]) == ""


def test_a_cpu_this_process_may_not_use_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(affinity.os, "sched_getaffinity", lambda pid: {0, 1})
    affinity.check_usable(frozenset({1}))
    with pytest.raises(AffinityError, match="CPU 7 is not available here .*may use 0-1"):
        affinity.check_usable(frozenset({0, 7}))


def test_taskmanagers_get_a_cpu_each_round_robin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(affinity.os, "sched_getaffinity", lambda pid: {2, 3})
    assert affinity.one_cpu_each(3) == [{2}, {3}, {2}]
