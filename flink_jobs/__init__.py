"""PyFlink jobs of fleetpulse: one module per job, thin adapters around `udfs/`.

Each job is a function of its sources and sinks (``build(...)``); ``main()`` wires Kafka and
Redis. Exceptions raised while building a job derive from :class:`JobError`.
"""


class JobError(Exception):
    """A job could not be configured or built; the message names the setting."""
