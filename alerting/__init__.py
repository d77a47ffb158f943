"""fleetpulse alert dispatcher: consumes ``fleet.alerts`` and delivers each alert to webhook
consumers (PagerDuty Events API v2 or signed webhooks), with routing, grouping, repeat
suppression, inhibition, silences, retries, a circuit breaker per receiver and dead letters.

Layout (pure logic has no I/O and is unit-tested without servers):

- pure: ``config`` (YAML model + validation), ``records`` (input parsing), ``dead_letters``
  (the bounded ``fleet.dlq`` record of a rejected input record), ``matchers``,
  ``routing``, ``engine`` (grouping, dedup/lifecycle, inhibition, silences), ``backoff``
  (retry schedule, circuit breaker), ``wire`` (Events API v2 bodies), ``signature`` (HMAC;
  ``verify_standalone`` is a receiver's stdlib-only copy).
- I/O: ``store`` (SQLite state), ``delivery`` (sender threads per receiver), ``http_client``
  and ``deadline`` (HTTP transports, one deadline per attempt), ``service`` (Kafka loop),
  ``metrics`` (prometheus-client + /metrics and /healthz server), ``cli``.

Exceptions: everything this package raises on purpose derives from :class:`AlertingError`.
:class:`ConfigError` (a bad configuration file; the message names the file, the field path
and what is wrong) and :class:`StoreError` (the state directory cannot be used) are its
subclasses. Bad *input records* never raise: they go to the dead-letter topic, and a dead
letter that cannot be written is counted and logged, never raised (tests/poison_corpus.py).
"""


class AlertingError(Exception):
    """Root of the exceptions raised by the alert dispatcher."""


class ConfigError(AlertingError):
    """The configuration file is invalid; the message names file, field and problem."""


class StoreError(AlertingError):
    """The durable state directory cannot be opened or used."""
