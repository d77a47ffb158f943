"""The dispatcher says in its log, at most once a minute per receiver, that a receiver is
failing (its name, the reason, host:port, alerts queued) and when it delivers again: the pure
rate limiter with a fake clock, then a worker whose fake transport moves a fake clock."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
import pytest
from alerting_receiver import alert_doc

from alerting.backoff import Outcome
from alerting.config import ReceiverConfig
from alerting.delivery import ReceiverWorker
from alerting.engine import EngineState, Notification
from alerting.failure_notice import FailureNotice, endpoint_address
from alerting.metrics import Metrics
from alerting.records import Alert, decode
from alerting.store import Store
from fleetpulse.waiting import wait_until

pytestmark = pytest.mark.unit

REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"


def test_first_failure_warns_then_at_most_once_per_interval() -> None:
    n = FailureNotice("ops-webhook", "http://127.0.0.1:9099/alerts", interval_ms=60_000)
    first = n.failed(REFUSED, 1_000, queued=3, circuit="closed")
    assert first == (
        f"receiver ops-webhook failing: {REFUSED} (127.0.0.1:9099); 3 alerts queued; "
        "1 failed attempts in a row"
    )
    assert n.failed(REFUSED, 30_000, queued=9, circuit="closed") is None
    assert n.failed(REFUSED, 60_999, queued=9, circuit="open") is None
    later = n.failed("HTTP 503", 61_000, queued=312, circuit="open")
    assert later is not None
    assert "HTTP 503" in later and "312 alerts queued" in later and "circuit open" in later
    assert "4 failed attempts in a row" in later


def test_recovery_is_said_once_and_only_after_a_warning() -> None:
    n = FailureNotice("hook", "http://h:1/")
    assert n.succeeded() is None  # nothing was wrong
    n.failed(REFUSED, 0, 1, "closed")
    n.failed(REFUSED, 10, 1, "half_open")
    assert n.succeeded() == "receiver hook delivering again after 2 failed attempts"
    assert n.succeeded() is None
    # a new streak within the minute of the last warning stays quiet (rate limit) ...
    assert n.failed(REFUSED, 20_000, 1, "closed") is None
    assert n.succeeded() is None
    # ... and one after it warns again
    assert n.failed(REFUSED, 60_000, 1, "closed") is not None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:9099/alerts?token=secret", "127.0.0.1:9099"),
        ("https://user:pw@hooks.example.com/services/T0/B0/XXXX", "hooks.example.com:443"),
        ("http://[::1]:8080/a", "[::1]:8080"),
        ("http://host:notaport/", "?"),
    ],
)
def test_the_address_never_shows_path_query_or_credentials(url: str, shown: str) -> None:
    assert endpoint_address(url) == shown


class ClockedTransport:
    """Fails ``failures`` times, then answers 202; each attempt moves the fake clock on by
    ``step_ms`` (reading the clock moves it 1 ms, so the worker's waits end)."""

    def __init__(self, failures: int, step_ms: int) -> None:
        self.failures, self.step_ms = failures, step_ms
        self.now_ms = 1_000_000
        self.lock = threading.Lock()
        self.attempts = 0

    def clock(self) -> int:
        with self.lock:
            self.now_ms += 1
            return self.now_ms

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Outcome:
        with self.lock:
            self.now_ms += self.step_ms
            self.attempts += 1
            if self.attempts <= self.failures:
                return Outcome(None, REFUSED)
        return Outcome(202)

    def close(self) -> None:
        pass


def test_a_failing_receiver_is_named_in_the_log_once_a_minute(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = ReceiverConfig.model_validate(
        {
            "name": "ops-webhook",
            "type": "webhook",
            "url": "http://127.0.0.1:9099/alerts",
            "secret": "s3cret",
            "max_in_flight": 1,
            "retry": {
                "max_attempts": 20,
                "initial_backoff": "2ms",
                "max_backoff": "4ms",
                "max_age": "1h",
            },
            "circuit_breaker": {"failure_threshold": 1000, "reset_timeout": "10ms"},
        }
    )
    # attempts 25 s apart on the fake clock: 7 fail (at 25, 50, ..., 175 s), the 8th delivers
    t = ClockedTransport(failures=7, step_ms=25_000)
    a = decode(orjson.dumps(alert_doc()), record_ts_ms=int(time.time() * 1000))
    assert isinstance(a, Alert)
    note = Notification("ops-webhook", a.dedup_key, a.event_action, a.event(), a.record_ts_ms)
    items = store.commit_batch(EngineState(), [note], t.now_ms)
    caplog.set_level(logging.INFO, logger="alerting.delivery")
    w = ReceiverWorker(cfg, store, Metrics(), t, clock=t.clock).start()
    try:
        w.submit(items)
        wait_until(lambda: w.pending() == 0, 20, "the delivery")
    finally:
        w.stop()
    lines: list[Any] = [r.getMessage() for r in caplog.records if r.name == "alerting.delivery"]
    warnings = [m for m in lines if "failing" in m]
    # warned at the 1st failure (25 s), the 4th (100 s) and the 7th (175 s): 75 s apart
    assert len(warnings) == 3, lines
    assert warnings[0] == (
        f"receiver ops-webhook failing: {REFUSED} (127.0.0.1:9099); 1 alerts queued; "
        "1 failed attempts in a row"
    )
    assert "4 failed attempts in a row" in warnings[1]
    assert "7 failed attempts in a row" in warnings[2]
    assert lines[-1] == "receiver ops-webhook delivering again after 7 failed attempts"
