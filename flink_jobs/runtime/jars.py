"""Where a job finds the JVM artifacts it ships: the Kafka connector, the metrics reporter and
Flink's filesystem plugins (S3).

The set-up (``./dev.sh setup``, ``jvm/pom.xml``) resolves them from Maven Central into a cache
directory, ``FLEETPULSE_JVM_DIR`` or ``$XDG_CACHE_HOME/fleetpulse/jvm``.
"""

from __future__ import annotations

import os
from pathlib import Path

from flink_jobs import JobError


def jvm_dir() -> Path:
    """Directory the set-up filled from Maven Central (see jvm/pom.xml and dev.sh)."""
    env = os.environ.get("FLEETPULSE_JVM_DIR")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "fleetpulse" / "jvm"


def flink_jars() -> list[Path]:
    """Jars a Flink job needs on its classpath: the Kafka SQL connector (and the reporter)."""
    d = jvm_dir() / "flink"
    jars = sorted(d.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise JobError(f"flink-sql-connector-kafka not found in {d}: run ./dev.sh setup")
    return jars


def prometheus_reporter_jar() -> Path | None:
    jars = sorted((jvm_dir() / "flink").glob("flink-metrics-prometheus-*.jar"))
    return jars[0] if jars else None


def plugins_dir() -> Path | None:
    """Flink's plugin directory the set-up filled (the S3 filesystem), or None."""
    d = jvm_dir() / "plugins"
    return d if any(d.glob("*/*.jar")) else None
