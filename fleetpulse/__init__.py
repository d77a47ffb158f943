"""fleetpulse platform: the `fleetpulse` command and the local services it runs.

Exceptions raised by this package derive from :class:`PlatformError`.
"""


class PlatformError(Exception):
    """A local service could not be set up, started or reached; the message says which."""
