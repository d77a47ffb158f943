# syntax=docker/dockerfile:1
#
# Flink session cluster image for fleetpulse: JobManager, TaskManagers and the one-shot job
# submitter all run this image. Build context: the repository root.
#
#   docker build -f docker/flink.Dockerfile -t fleetpulse-flink .
#
# On top of the official Flink image (Java 17) it adds:
#   * Python 3.11 built from source with a shared libpython (thread-mode PyFlink embeds the
#     interpreter in the TaskManager JVM through pemja, which loads libpython3.11.so);
#   * fleetpulse with the dependencies of its `jobs` extra, including apache-flink (the PyFlink
#     wheel, same version as the cluster: the build fails if they differ);
#   * lib/: the Kafka SQL connector (resolved by jvm/pom.xml), the Prometheus reporter (unless
#     the image already ships it as a plugin) and pyflink's flink-python jar (DESIGN.md: a second
#     thread-mode job on one TaskManager fails with `NoSuchFieldException: loadedLibraryNames`
#     unless flink-python is loaded once, by the parent class loader, from lib/);
#   * conf/config.yaml: thread-mode Python with this interpreter, Prometheus reporter on 9249;
#   * fleetpulse's operator jar (jvm/src), compiled when fleetpulse is installed (setup.py) by
#     the JDK of the Maven stage, and carried inside the installed package.

ARG FLINK_VERSION=2.2.1

# -- JVM artifacts from Maven Central, through the project's own POM ---------------------------
FROM maven:3.9-eclipse-temurin-17 AS jvm-artifacts
WORKDIR /build
COPY jvm/pom.xml jvm/pom.xml
RUN --mount=type=cache,target=/root/.m2 \
    mvn -q -B -f jvm/pom.xml -Dfleetpulse.jvm.dir=/jvm package \
    && ls /jvm/flink/flink-sql-connector-kafka-*.jar /jvm/flink/flink-metrics-prometheus-*.jar

# -- the cluster image ---------------------------------------------------------------------------
FROM flink:${FLINK_VERSION}-java17
ARG FLINK_VERSION
ARG PYTHON_VERSION=3.11.13
USER root

# curl: health checks and the job submitter's REST polling.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# Python 3.11 from python.org with --enable-shared (the distribution's Python may be another
# minor version). Build dependencies are purged afterwards; the shared libraries the new
# interpreter links against are kept (the technique of the official python images).
RUN set -eux; \
    saved="$(apt-mark showmanual)"; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential xz-utils libssl-dev zlib1g-dev libbz2-dev libffi-dev liblzma-dev \
      libsqlite3-dev uuid-dev libreadline-dev; \
    curl -fsSL -o /tmp/python.tar.xz \
      "https://www.python.org/ftp/python/${PYTHON_VERSION}/Python-${PYTHON_VERSION}.tar.xz"; \
    mkdir -p /usr/src/python; \
    tar -xJf /tmp/python.tar.xz -C /usr/src/python --strip-components=1; \
    cd /usr/src/python; \
    ./configure --enable-shared --with-ensurepip=install --without-doc-strings \
      LDFLAGS="-Wl,-rpath=/usr/local/lib"; \
    make -j"$(nproc)"; \
    make install; \
    ldconfig; \
    cd /; rm -rf /usr/src/python /tmp/python.tar.xz; \
    find /usr/local/lib/python3.11 -depth -type d \
      \( -name test -o -name tests -o -name idle_test \) -exec rm -rf '{}' +; \
    ln -sf /usr/local/bin/python3.11 /usr/local/bin/python; \
    apt-mark auto '.*' > /dev/null; \
    [ -z "$saved" ] || apt-mark manual $saved > /dev/null; \
    find /usr/local -type f -executable -exec ldd '{}' ';' 2>/dev/null \
      | awk '/=>/ { so = $(NF-1); if (index(so, "/usr/local/") == 1) { next }; gsub("^/(usr/)?", "", so); printf "*%s\n", so }' \
      | sort -u | xargs -r dpkg-query --search | cut -d: -f1 | sort -u \
      | xargs -r apt-mark manual; \
    apt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false; \
    rm -rf /var/lib/apt/lists/*; \
    python3.11 -c "import ssl, sqlite3, lzma, bz2, ctypes, sysconfig; assert sysconfig.get_config_var('Py_ENABLE_SHARED')"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLEETPULSE_JVM_DIR=/opt/fleetpulse/jvm

WORKDIR /opt/fleetpulse

# Dependencies first (this layer survives source changes): the [project] dependencies and the
# `jobs` extra of pyproject.toml (listed by docker/requirements.py), which pins apache-flink to
# the cluster's version; setuptools and wheel build fleetpulse below without isolation.
COPY pyproject.toml ./
COPY docker/requirements.py ./docker/requirements.py
RUN python3.11 docker/requirements.py jobs > /tmp/requirements.txt \
    && python3.11 -m pip install -r /tmp/requirements.txt \
    && python3.11 -m pip install "setuptools>=77" wheel \
    && rm /tmp/requirements.txt

COPY setup.py README.md LICENSE ./
COPY fleetpulse ./fleetpulse
COPY flink_jobs ./flink_jobs
COPY udfs ./udfs
COPY alerting ./alerting
COPY ws_gateway ./ws_gateway
COPY simulator ./simulator
COPY bench ./bench
COPY jvm/src ./jvm/src

# fleetpulse itself. setup.py compiles its Flink operators (jvm/src: the bundler through which
# the tracking job hands pings to Python a bundle at a time, the dead-letter sink) against this
# image's PyFlink jars and the Kafka connector, with the JDK of the Maven stage (the Flink image
# has a JRE only), and installs the jar inside the package. Neither the JDK nor the sources stay.
COPY --from=jvm-artifacts /jvm/flink/ /opt/fleetpulse/jvm/flink/
COPY --from=jvm-artifacts /opt/java/openjdk /tmp/jdk
RUN JAVA_HOME=/tmp/jdk FLEETPULSE_BUILD_OPERATORS=require \
      python3.11 -m pip install --no-deps --no-build-isolation . \
    && rm -rf /tmp/jdk /opt/fleetpulse/jvm/operators build ./*.egg-info ./jvm/src \
    && cd / && python3.11 -c "from flink_jobs.runtime.operators_jar import PACKAGED_JAR as j; assert j.is_file(), j"
# The job files under /opt/fleetpulse stay as the entry scripts `flink run -py` names (compose,
# deploy/kubernetes); what they import is the installed package, which carries the jar.

# The Kafka connector and the Prometheus reporter resolved by jvm/pom.xml. The job also ships
# the connector as a pipeline jar (fleetpulse.paths.flink_jars reads FLEETPULSE_JVM_DIR);
# org.apache.flink classes load parent-first, so lib/ wins and nothing is loaded twice.
# (Copied into /opt/fleetpulse/jvm/flink/ above, for the operators' compile.)
RUN set -eux; \
    cp /opt/fleetpulse/jvm/flink/flink-sql-connector-kafka-*.jar /opt/flink/lib/; \
    if ! ls /opt/flink/plugins/metrics-prometheus/flink-metrics-prometheus-*.jar >/dev/null 2>&1; then \
      cp /opt/fleetpulse/jvm/flink/flink-metrics-prometheus-*.jar /opt/flink/lib/; \
    fi; \
    pyflink="$(python3.11 -c 'import pathlib, pyflink; print(pathlib.Path(pyflink.__file__).parent)')"; \
    pyflink_version="$(python3.11 -c 'from pyflink.version import __version__; print(__version__)')"; \
    test "$pyflink_version" = "${FLINK_VERSION}" \
      || { echo "apache-flink ${pyflink_version} does not match the cluster's Flink ${FLINK_VERSION}" >&2; exit 1; }; \
    ls /opt/flink/lib/flink-dist-"${FLINK_VERSION}".jar; \
    cp "$pyflink"/opt/flink-python-*.jar /opt/flink/lib/

# Cluster-wide configuration; per-container settings (addresses, slots, memory) come from
# FLINK_PROPERTIES in docker-compose.yml.
RUN bash /opt/flink/bin/config-parser-utils.sh /opt/flink/conf /opt/flink/bin /opt/flink/lib \
      -D python.execution-mode=thread \
      -D python.executable=/usr/local/bin/python3.11 \
      -D python.client.executable=/usr/local/bin/python3.11 \
      -D metrics.reporter.prom.factory.class=org.apache.flink.metrics.prometheus.PrometheusReporterFactory \
      -D metrics.reporter.prom.port=9249 \
      -D execution.checkpointing.dir=file:///opt/flink/checkpoints/cluster \
      -D execution.checkpointing.externalized-checkpoint-retention=RETAIN_ON_CANCELLATION

COPY docker/submit-job.sh /opt/fleetpulse/docker/submit-job.sh

# Checkpoints live on a named volume shared by the JobManager, the TaskManagers and the
# submitter (which looks up the newest one to restore from); a new volume copies this owner.
RUN mkdir -p /opt/flink/checkpoints \
    && chown -R flink:flink /opt/flink/checkpoints /opt/flink/lib /opt/flink/conf \
    && chmod 0755 /opt/fleetpulse/docker/submit-job.sh

WORKDIR /opt/flink
EXPOSE 8081 6123 6124 9249
# ENTRYPOINT and CMD stay the official image's (`jobmanager`, `taskmanager`, or any command,
# run as the `flink` user).
