"""Fleet simulator: trucks, shipments, injected faults and the ground truth the jobs should reach.

Every exception this package raises on purpose derives from :class:`SimulatorError`, so the CLI
can turn it into a clear message instead of a traceback.
"""


class SimulatorError(Exception):
    """A simulator input (configuration, hub file, replay file, broker) is unusable."""
