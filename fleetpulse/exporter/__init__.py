"""`fleetpulse exporter`: the cross-component health of a running fleetpulse as Prometheus
metrics (consumer lag, position freshness, region and delay gauges, Flink job health, alerts
and dead letters seen), and the same readings for `fleetpulse status`.

Pure logic apart from I/O, so both the exporter and `status` use one definition of each reading:

* :mod:`.readings`: the readings (dataclasses) and how each is computed from what Redis, Kafka
  and the Flink REST API answered; no client is imported.
* :mod:`.evaluate`: thresholds over readings (`status`'s exit code).
* :mod:`.records`: labels of an alert or a dead letter, with bounded label values.
* :mod:`.families`: readings as Prometheus metric families.
* :mod:`.sources`: the bounded reads of Redis, Kafka and Flink (I/O), run together.
* :mod:`.tail`: the consumer that counts what arrives on the alerts and dead-letter topics.
* :mod:`.cache`: one reading per interval however many scrapers ask.
* :mod:`.status`: `fleetpulse status`' readings (from `up`'s state file) and report.
* :mod:`.service`, :mod:`.settings`, :mod:`.cli`: the running exporter (its HTTP endpoints are
  the dispatcher's :class:`alerting.metrics.MetricsServer`).
* :mod:`.prometheus`: the configuration `fleetpulse up --prometheus` gives a Prometheus server.
"""

from __future__ import annotations


class ExporterError(Exception):
    """Bad exporter or `status` configuration; the message names the setting."""
