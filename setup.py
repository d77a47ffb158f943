"""Build hook: a wheel of fleetpulse carries its Flink operator jar.

The jobs' JVM operators (``jvm/src``) are compiled when the wheel is built, into
``flink_jobs/runtime/lib/fleetpulse-operators.jar`` of the build directory (never the source
tree), so an installed fleetpulse submits jobs without a JDK compiler or the sources.
Compiling needs the Flink jars of the ``apache-flink`` wheel and the Kafka connector
(``./dev.sh setup``), hence a build without isolation in an environment that has them:
``./dev.sh wheel``. ``FLEETPULSE_BUILD_OPERATORS`` says what to do without them:

* ``auto`` (default): build the jar when possible, else warn and leave it out (the dispatcher,
  gateway and simulator images need no jar and no PyFlink);
* ``require``: fail the build instead;
* ``skip``: never build it.

Everything else about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODES = ("auto", "require", "skip")
JAR_IN_PACKAGE = Path("flink_jobs", "runtime", "lib", "fleetpulse-operators.jar")


class BuildPyWithOperatorsJar(build_py):
    """``build_py`` that also compiles the operator jar into the build directory."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install compiles from jvm/src on first use
        mode = os.environ.get("FLEETPULSE_BUILD_OPERATORS", "auto")
        if mode not in MODES:
            raise SystemExit(f"FLEETPULSE_BUILD_OPERATORS={mode!r}: expected one of {MODES}")
        if mode == "skip":
            return
        if importlib.util.find_spec("pyflink") is None:
            self._without_jar(mode, "apache-flink is not installed in the build environment")
            return
        target = Path(self.build_lib) / JAR_IN_PACKAGE
        done = subprocess.run(
            [sys.executable, "-m", "flink_jobs.runtime.operators_jar", "--output", str(target)],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            self._without_jar(mode, done.stderr.strip() or done.stdout.strip())

    def _without_jar(self, mode: str, why: str) -> None:
        message = f"fleetpulse's Flink operator jar was not built: {why}"
        if mode == "require":
            raise SystemExit(message)
        print(f"warning: {message}; the jobs will need FLEETPULSE_OPERATORS_JAR", file=sys.stderr)


setup(cmdclass={"build_py": BuildPyWithOperatorsJar})
