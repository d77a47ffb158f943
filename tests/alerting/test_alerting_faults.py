"""The distrustful HTTP client against real misbehaving servers (bench/fault_server.py), both
transports: each attempt ends within its deadline, a 2xx is delivered exactly once, a huge or
non-finite ``Retry-After`` neither parks an alert nor breaks a 2xx, and a healthy receiver's
latency stays low meanwhile (each receiver has its own sender threads). Bounds are generous;
the figures are printed (``pytest -s``); ``python -m bench.fault_matrix`` prints them too."""

from __future__ import annotations

import pytest

from alerting.backoff import parse_retry_after
from bench.fault_matrix import MatrixResult, report, run_matrix

pytestmark = pytest.mark.integration

TIMEOUT_S = 2.0
SLACK_S = 2.0  # scheduling on a loaded 2-core machine; a per-read timeout would take minutes


@pytest.fixture(scope="module", params=["stdlib", "httpx"])
def matrix(request: pytest.FixtureRequest) -> MatrixResult:
    r = run_matrix(request.param, timeout_s=TIMEOUT_S, rate=20, seconds=5, per_fault=2)
    print(f"\n== http_client: {request.param}\n{report(r)}")
    return r


def test_every_attempt_ends_within_its_deadline(matrix: MatrixResult) -> None:
    for f in matrix.faults.values():
        assert f.attempts, f.name
        longest = max(d for d, _ in f.attempts)
        assert longest < TIMEOUT_S + SLACK_S, (f.name, longest)
        assert f.settled == f.alerts, f"{f.name}: alerts still queued"


@pytest.mark.parametrize(
    "fault",
    [
        "retry_after_inf_on_2xx",
        "retry_after_inf_on_429",
        "429_huge_retry_after",
        "body_50mb",
        "connection_reset",
    ],
)
def test_a_2xx_is_delivered_exactly_once(matrix: MatrixResult, fault: str) -> None:
    f = matrix.faults[fault]
    assert len(f.deliveries) == f.alerts and set(f.deliveries.values()) == {1}, f.deliveries
    assert all(o.error == "" for _, o in f.attempts if o.delivered)


def test_retry_after_on_a_2xx_is_ignored(matrix: MatrixResult) -> None:
    f = matrix.faults["retry_after_inf_on_2xx"]
    assert [o.status for _, o in f.attempts] == [202] * f.alerts


def test_huge_retry_after_is_capped_at_max_backoff(matrix: MatrixResult) -> None:
    f = matrix.faults["429_huge_retry_after"]
    statuses = sorted(o.status or 0 for _, o in f.attempts)
    assert statuses == [202] * f.alerts + [429] * f.alerts
    # max_backoff is 1 s: the retry came, not after 99999999999 s
    assert f.retry_gaps_s and max(f.retry_gaps_s) < 1.0 + SLACK_S


def test_a_trickling_receiver_times_out_every_attempt(matrix: MatrixResult) -> None:
    f = matrix.faults["byte_every_4s"]
    assert f.deliveries == {}
    assert all(o.status is None and "timeout" in o.error for _, o in f.attempts)
    assert len(f.attempts) == 3 * f.alerts  # max_attempts, then dead letters


def test_unresolvable_host_fails_fast_as_a_connection_error(matrix: MatrixResult) -> None:
    f = matrix.faults["unresolvable_host"]
    assert all(o.status is None and o.retryable for _, o in f.attempts)
    assert len(f.attempts) == 3 * f.alerts


def test_healthy_receiver_is_not_starved(matrix: MatrixResult) -> None:
    assert len(matrix.healthy_latencies_s) == matrix.healthy_sent
    # starved, it would wait behind 2 s attempts of the faulty receivers
    assert matrix.p(0.99) < 1.0, matrix.p(0.99)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("inf", None),
        ("-inf", None),
        ("nan", None),
        ("-5", None),
        ("1e400", None),
        ("0x10", None),
        ("soon", None),
        ("٣", None),  # a non-ASCII digit
        ("99999999999", 86_400_000),
        ("9" * 5000, 86_400_000),
        ("1.5", 1500),
        ("0", 0),
        ("Thu, 01 Jan 1970 00:00:05 GMT", 4000),
        ("Thu, 01 Jan 1970 00:00:05 -0000", 4000),
        ("Fri, 31 Dec 99999 23:59:59 GMT", None),
        ("Wed, 31 Dec 1969 23:59:59 GMT", 0),
    ],
)
def test_retry_after_parsing_never_raises(value: str, expected: int | None) -> None:
    assert parse_retry_after(value, 1000) == expected
