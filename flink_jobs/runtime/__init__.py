"""What both jobs run on: settings, the Flink environment, Kafka sources and sinks, records
crossing to Python, timers, the clock, metrics, CPU affinity and fleetpulse's operator jar.

Imports only ``udfs`` and libraries, never the CLI package (``fleetpulse``): a job submitted
to a cluster needs this package, ``udfs`` and its own folder, nothing else.
"""
