"""PyFlink jobs of fleetpulse: a folder per job (``tracking/``, ``delay/``), each with
``job.py`` (the graph, built from settings) and one module per operator, on the shared
``runtime/``. The domain logic they run is ``udfs``; the operators are thin adapters around it.
Exceptions raised while building a job derive from :class:`JobError`.
"""


class JobError(Exception):
    """A job could not be configured or built; the message names the setting."""
