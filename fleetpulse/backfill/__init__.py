"""`fleetpulse backfill`: rerun a job's current code over a range of Kafka history into a
staging Redis database and staging topics, and compare staging with live (docs/backfill.md).

The pure parts (:mod:`.ranges`: times, offsets, progress; :mod:`.compare`: the verify report)
take no Kafka or Redis; :mod:`.io` reads them and :mod:`.run` starts the job.

:class:`BackfillError` is the root of the package's errors: a range, a setting or a service
that makes the backfill impossible, said in the operator's words (the CLI prints it).
"""

from __future__ import annotations


class BackfillError(Exception):
    """A backfill that cannot start or finish, for a reason the operator can act on."""
