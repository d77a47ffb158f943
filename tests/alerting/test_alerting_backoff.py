from __future__ import annotations

import random

import pytest

from alerting.backoff import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    Outcome,
    backoff_ms,
    decide,
    parse_retry_after,
)
from alerting.config import BreakerConfig, RetryConfig
from alerting.signature import sign, signature_headers, verify

pytestmark = pytest.mark.unit

RETRY = RetryConfig.model_validate(
    {"max_attempts": 4, "initial_backoff": "100ms", "max_backoff": "1s", "max_age": "10s"}
)


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (202, "delivered"),
        (200, "delivered"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (None, "retry"),
        (400, "dead_letter"),
        (401, "dead_letter"),
        (404, "dead_letter"),
    ],
)
def test_what_is_retried(status: int | None, action: str) -> None:
    d = decide(Outcome(status, "x"), 1, 0, RETRY, random.Random(1))
    assert d.action == action


def test_budget_by_attempts_and_age() -> None:
    rng = random.Random(1)
    assert decide(Outcome(500), 3, 0, RETRY, rng).action == "retry"
    d = decide(Outcome(500), 4, 0, RETRY, rng)
    assert d.action == "dead_letter" and "after 4 attempts" in d.reason
    assert decide(Outcome(None, "timeout"), 1, 9_990, RETRY, rng).action == "dead_letter"


def test_exponential_backoff_with_jitter_is_bounded() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (30, 1000)]:
        samples = [backoff_ms(attempt, RETRY, rng) for _ in range(200)]
        assert min(samples) >= 50 and max(samples) <= ceiling
        assert len(set(samples)) > 10  # jittered
    assert backoff_ms(1, RETRY, rng, retry_after_ms=700) == 700
    assert backoff_ms(1, RETRY, rng, retry_after_ms=90_000) == 1000  # capped


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2", 0) == 2000
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:05 GMT", 1000) == 4000
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after(None, 0) is None
    assert decide(Outcome(429, retry_after_ms=300), 1, 0, RETRY, random.Random()).delay_ms == 300


def test_circuit_breaker_opens_probes_and_closes() -> None:
    b = CircuitBreaker(
        BreakerConfig.model_validate({"failure_threshold": 2, "reset_timeout": "1s"})
    )
    assert b.allow(0)
    b.record(Outcome(None, "timeout"), 0)
    assert b.state == CLOSED
    b.record(Outcome(500), 10)
    assert b.state == OPEN and not b.allow(500)
    assert b.allow(1010) and b.state == HALF_OPEN
    assert not b.allow(1011)  # one probe at a time
    b.record(Outcome(500), 1100)
    assert b.state == OPEN and not b.allow(1200)
    assert b.allow(2100)
    b.record(Outcome(202), 2110)
    assert b.state == CLOSED and b.allow(2111)
    b.record(Outcome(400), 2200)  # an answer, even a rejection, means the endpoint is alive
    assert b.state == CLOSED and b.failures == 0


def test_signature_verifies_and_rejects_tampering_and_replays() -> None:
    body = b'{"event_action":"trigger"}'
    h = signature_headers("s3cret", 42, 1_700_000_000, body)
    ts, sig = h["X-Fleetpulse-Timestamp"], h["X-Fleetpulse-Signature"]
    assert sig == sign("s3cret", 42, 1_700_000_000, body) and sig.startswith("v2=")
    assert verify("s3cret", "42", ts, sig, body, 1_700_000_010) == (True, "")
    assert verify("s3cret", "42", ts, sig, body + b" ", 1_700_000_010)[1] == "signature mismatch"
    assert verify("other", "42", ts, sig, body, 1_700_000_010)[1] == "signature mismatch"
    # the delivery id is signed: a body replayed under another id does not verify
    assert verify("s3cret", "43", ts, sig, body, 1_700_000_010)[1] == "signature mismatch"
    assert not verify("s3cret", "42", ts, sig, body, 1_700_000_000 + 301)[0]  # replayed later
    assert not verify("s3cret", "42", None, sig, body, 1_700_000_000)[0]
    assert not verify("s3cret", None, ts, sig, body, 1_700_000_000)[0]
    assert verify("s3cret", "42", "+1700000000", sig, body, 1_700_000_000)[1] == "bad timestamp"
