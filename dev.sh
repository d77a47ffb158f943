#!/usr/bin/env bash
# fleetpulse developer entry point: sets up a fresh machine, then runs the system or the tests.
#
#   ./dev.sh up [fleetpulse up flags]   set up, then start Kafka, Redis, the Flink jobs, the
#                                       dispatcher, the gateway and the simulator on loopback
#   ./dev.sh test [pytest args]         set up, lint (ruff check and format, mypy), then test
#   ./dev.sh test-all [pytest args]     the same with the slow tests too (pytest --slow)
#   ./dev.sh lint                       set up, then only lint
#   ./dev.sh wheel                      set up, then build dist/fleetpulse-*.whl carrying the
#                                       compiled Flink operator jar (setup.py)
#   ./dev.sh setup                      only set up (idempotent; a warm run needs no network)
#
# Set-up: checks Java 17+, installs redis-server and prometheus (with promtool) from Debian if
# missing, creates .venv with the project and its dev extras, and resolves the JVM artifacts
# (Kafka broker, Flink Kafka connector, Flink Prometheus reporter) from Maven Central through
# jvm/pom.xml into the cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
PYTHON="${FLEETPULSE_PYTHON:-python3}"
VENV="$ROOT/.venv"
export FLEETPULSE_JVM_DIR="${FLEETPULSE_JVM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetpulse/jvm}"

say() { printf '[fleetpulse] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

check_java() {
  command -v java >/dev/null 2>&1 || die "Java 17 or newer is needed (no 'java' on PATH); install openjdk-17-jdk-headless"
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
  [[ "${v%%.*}" -ge 17 ]] 2>/dev/null || die "Java 17 or newer is needed, found Java ${v:-unknown} ($(command -v java))"
  command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed to resolve the Kafka broker and Flink connector jars"
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 && return
  say "installing redis-server from Debian packages"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >/dev/null
  # The package starts a system-wide instance; fleetpulse runs its own on its own port.
  $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
}

ensure_chromium() {
  # The live map's browser test drives Debian's chromium through Playwright (no browser
  # download); npm bundles the map library into the package.
  command -v chromium >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return
  say "installing chromium and npm from Debian packages"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -q >/dev/null
  command -v chromium >/dev/null 2>&1 || \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >/dev/null
  command -v npm >/dev/null 2>&1 || \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q nodejs npm >/dev/null
}

ensure_prometheus() {
  # promtool checks and unit-tests the alert rules (deploy/prometheus/, tests/unit/
  # test_alert_rules.py); `fleetpulse up --prometheus` runs prometheus. The package starts a
  # system-wide server; fleetpulse runs its own, on its own port.
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && return
  say "installing prometheus (and promtool) from Debian packages"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends prometheus >/dev/null
  $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
}

ensure_amtool() {
  # amtool (Debian's prometheus-alertmanager) is the client the dispatcher's Alertmanager-shaped
  # API is tested with (tests/alerting/test_alerting_amtool.py). The package also starts a
  # system-wide alertmanager, which fleetpulse does not use.
  command -v amtool >/dev/null 2>&1 && return
  say "installing amtool (prometheus-alertmanager) from Debian packages"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    prometheus-alertmanager >/dev/null
  $sudo systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
}

ensure_map_assets() {
  "$VENV/bin/python" -m ws_gateway.build_assets >/dev/null
}

ensure_venv() {
  local stamp="$VENV/.fleetpulse-stamp" want extras="all,dev,bench"
  want=$( (cat pyproject.toml; echo "$extras") | sha256sum | cut -c1-16)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  say "creating $VENV and installing fleetpulse (first run downloads apache-flink, ~1-2 min)"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[$extras]"
  echo "$want" > "$stamp"
}

ensure_jvm() {
  local stamp="$FLEETPULSE_JVM_DIR/.stamp" want
  want=$(sha256sum jvm/pom.xml | cut -c1-16)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  say "resolving JVM artifacts from Maven Central into $FLEETPULSE_JVM_DIR"
  rm -rf "$FLEETPULSE_JVM_DIR"
  mkdir -p "$FLEETPULSE_JVM_DIR"
  mvn -q -B -f jvm/pom.xml -Dfleetpulse.jvm.dir="$FLEETPULSE_JVM_DIR" package
  echo "$want" > "$stamp"
}

# fleetpulse's own Flink operators (jvm/src), compiled with the JDK's javac against the Flink
# jars of the apache-flink wheel; cached by a hash of the sources, so a warm run only checks.
ensure_operators_jar() {
  "$VENV/bin/python" -c 'from flink_jobs.runtime.operators_jar import operators_jar; operators_jar()' \
    || die "building fleetpulse's Flink operators failed (a JDK 17 is needed: openjdk-17-jdk-headless)"
}

setup() {
  check_java
  ensure_redis
  ensure_chromium
  ensure_prometheus
  ensure_amtool
  ensure_venv
  ensure_map_assets
  ensure_jvm
  ensure_operators_jar
}

lint() {
  say "lint: ruff check, ruff format --check, mypy"
  "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check . && "$VENV/bin/mypy"
}

# A wheel built without isolation, so setup.py compiles the operator jar against this venv's
# apache-flink; FLEETPULSE_BUILD_OPERATORS=require fails the build rather than leave it out.
wheel() {
  say "building the fleetpulse wheel into dist/"
  FLEETPULSE_BUILD_OPERATORS=require "$VENV/bin/python" -m pip wheel -q --no-deps \
    --no-build-isolation -w dist .
  rm -rf build ./*.egg-info
  ls dist/fleetpulse-*.whl
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  setup) setup ;;
  up)    setup; exec "$VENV/bin/fleetpulse" up "$@" ;;
  lint)  setup; lint ;;
  test)  setup; lint; exec "$VENV/bin/python" -m pytest "$@" ;;
  test-all) setup; lint; exec "$VENV/bin/python" -m pytest --slow "$@" ;;
  wheel) setup; wheel ;;
  *)     echo "usage: ./dev.sh {up|test|test-all|lint|setup|wheel} [args]" >&2; exit 2 ;;
esac
