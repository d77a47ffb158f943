"""fleetpulse's own Flink operators (``jvm/src``): the jar a wheel carries, or one compiled from
the source tree on first use.

The jobs are PyFlink jobs, but some pieces run better in the JVM: the bundler that hands records
to Python a batch at a time (``io.fleetpulse.flink.ShardBundler``), and the dead-letter sink that
never fails its task (``DeadLetterSink``). Their sources are compiled with the JDK's ``javac``
against the Flink jars inside the ``apache-flink`` wheel and the Kafka connector the jobs ship
(whose Kafka client classes the sink uses), so the classes match the Flink that runs them. The
jar is cached under the JVM cache directory by a hash of the sources: a change to them builds a
new one, and parallel first uses (tests, several jobs) race harmlessly, each renaming a finished
jar into place.

An installed wheel has no ``jvm/src``: the jar was compiled when the wheel was built
(``setup.py``, ``python -m flink_jobs.runtime.operators_jar --output``) and travels inside the
package, so a cluster's machines need neither a JDK compiler nor the sources.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import add_jars_to_context_class_loader

from flink_jobs import JobError
from flink_jobs.runtime.jars import flink_jars, jvm_dir

SOURCE_DIR = Path(__file__).resolve().parents[2] / "jvm" / "src"
# Bytecode for Java 11, the oldest JVM Flink 2 runs on, so a cluster on 11 or 17 loads it.
JAVA_RELEASE = "11"
# A jar built beforehand and named by the environment (a cluster image that keeps it elsewhere).
PREBUILT_ENV = "FLEETPULSE_OPERATORS_JAR"
# Where a built wheel carries the jar (setup.py puts it there; never in the source tree).
PACKAGED_JAR = Path(__file__).resolve().parent / "lib" / "fleetpulse-operators.jar"


def _sources() -> list[Path]:
    return sorted(SOURCE_DIR.rglob("*.java"))


def sources_digest(sources: list[Path]) -> str:
    """A short hash of the sources' paths and contents: the jar's cache key."""
    h = hashlib.sha256(JAVA_RELEASE.encode())
    for src in sources:
        h.update(str(src.relative_to(SOURCE_DIR)).encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def _flink_lib() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent / "lib"


def _jdk_tool(name: str) -> str:
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / name if home else None
    if candidate is not None and candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise JobError(
            f"`{name}` not found: fleetpulse compiles its Flink operators with a "
            "JDK (11 or newer); install one or set JAVA_HOME"
        )
    return found


def operators_jar() -> Path:
    """The jar ``FLEETPULSE_OPERATORS_JAR`` names; else, in a source tree, the jar of
    ``jvm/src`` (built now if this version of the sources has none yet); else the jar an
    installed wheel carries."""
    prebuilt = os.environ.get(PREBUILT_ENV)
    if prebuilt:
        if not Path(prebuilt).is_file():
            raise JobError(
                f"{PREBUILT_ENV}={prebuilt}: no such file (the prebuilt jar of "
                "fleetpulse's Flink operators; unset it to build one here)"
            )
        return Path(prebuilt)
    sources = _sources()
    if sources:
        return built_jar(sources)
    if PACKAGED_JAR.is_file():
        return PACKAGED_JAR
    raise JobError(
        f"fleetpulse's Flink operator jar is missing: no {PACKAGED_JAR} in this installation "
        f"and no sources in {SOURCE_DIR} to build one. Install a wheel built with "
        "FLEETPULSE_BUILD_OPERATORS=require (./dev.sh wheel), or set "
        f"{PREBUILT_ENV} to a jar built elsewhere"
    )


def built_jar(sources: list[Path]) -> Path:
    """The jar of ``sources``, from the JVM cache or compiled into it now."""
    target = jvm_dir() / "operators" / f"fleetpulse-operators-{sources_digest(sources)}.jar"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        compile_jar(sources, built, Path(tmp) / "classes")
        os.replace(built, target)
    return target


def compile_jar(sources: list[Path], jar: Path, classes: Path) -> None:
    """``javac`` the sources against the wheel's Flink jars and the Kafka connector, then
    ``jar`` the classes into ``jar``."""
    compile_cmd = [
        _jdk_tool("javac"),
        "--release",
        JAVA_RELEASE,
        "-nowarn",
        "-cp",
        os.pathsep.join([str(_flink_lib() / "*"), *map(str, flink_jars())]),
        "-d",
        str(classes),
        *map(str, sources),
    ]
    for cmd in (compile_cmd, [_jdk_tool("jar"), "cf", str(jar), "-C", str(classes), "."]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise JobError(f"building {jar.name} failed ({cmd[0]}):\n{done.stdout}{done.stderr}")


def use_operators_jar(env: StreamExecutionEnvironment) -> None:
    """Put fleetpulse's operator jar on the client's class path and in ``pipeline.jars`` (which
    ships it to the cluster); only jobs that bundle need it, and with it a JDK to build it."""
    uri = operators_jar().resolve().as_uri()
    add_jars_to_context_class_loader([uri])
    config = get_gateway().jvm.org.apache.flink.python.util.PythonConfigUtil.getEnvironmentConfig(
        env._j_stream_execution_environment
    )
    jars = config.getString("pipeline.jars", None) or ""
    if uri not in jars.split(";"):
        config.setString("pipeline.jars", ";".join(j for j in (jars, uri) if j))


def main(argv: list[str] | None = None) -> int:
    """Compile ``jvm/src`` into ``--output``: what ``setup.py`` runs when it builds a wheel."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--output", type=Path, required=True, help="Path of the jar to write.")
    args = parser.parse_args(argv)
    sources = _sources()
    if not sources:
        parser.error(f"no Java sources in {SOURCE_DIR}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(built_jar(sources), args.output)
    except JobError as exc:
        parser.exit(1, f"{exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
