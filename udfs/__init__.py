"""Pure domain logic of fleetpulse: records, validation, geo, truck and shipment state machines.

No Flink, Kafka or Redis imports here: everything is a function of its inputs (event time is
passed in), so it is tested without a JVM. Exceptions raised here derive from :class:`UdfError`.
"""


class UdfError(Exception):
    """Root of the domain-logic exceptions (bad configuration data, for example)."""
