"""The dispatcher's /metrics and /healthz server: where it listens, a clear refusal, and what
its registry exposes (names by convention, the process and Python runtime families)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alerting.metrics import Metrics, MetricsServer

pytestmark = pytest.mark.unit


def test_it_listens_on_the_given_address_only() -> None:
    # 127.0.0.2 is loopback too on Linux, so the test needs no network.
    server = MetricsServer(
        Metrics(), 0, lambda: (True, {"receivers": {}}), host="127.0.0.2"
    ).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.2:{server.port}/healthz", timeout=5) as r:
            assert orjson.loads(r.read())["status"] == "ok"
        with urllib.request.urlopen(f"http://127.0.0.2:{server.port}/metrics", timeout=5) as r:
            assert b"fleetpulse_alerting_records" in r.read()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
    finally:
        server.stop()


def test_an_address_it_cannot_listen_on_is_refused_naming_the_flag(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this machine: binding it fails at once,
    # before the dispatcher connects to Kafka.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alerting",
            "run",
            "--bootstrap",
            "127.0.0.1:1",
            "--state-dir",
            str(tmp_path / "state"),
            "--metrics-host",
            "192.0.2.1",
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        # the packaged config's webhook needs a private secret (the demo one is refused)
        env={**os.environ, "FLEETPULSE_WEBHOOK_SECRET": "test-" + "x" * 32},
    )
    assert proc.returncode == 1, proc.stderr
    assert "cannot serve metrics on 192.0.2.1:0" in proc.stderr
    assert "--metrics-host" in proc.stderr
    assert "Traceback" not in proc.stderr


def exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_the_process_and_python_runtime_families_are_exported() -> None:
    families = {f.name: f for f in text_string_to_metric_families(exposition(Metrics()))}
    assert {"python_info", "python_gc_objects_collected"} <= set(families)
    if sys.platform.startswith("linux"):  # read from /proc
        assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= set(families)
        assert families["process_start_time_seconds"].samples[0].value > 0


def test_a_labelled_counter_renders_once_with_total_appended_and_its_label() -> None:
    m = Metrics()
    m.records.labels("accepted").inc(3)
    m.deliveries.labels("pagerduty", "delivered").inc()
    text = exposition(m)
    assert "# TYPE fleetpulse_alerting_records_total counter" in text
    assert 'fleetpulse_alerting_records_total{outcome="accepted"} 3.0' in text
    assert (
        'fleetpulse_alerting_deliveries_total{outcome="delivered",receiver="pagerduty"} 1.0' in text
    )
    assert "_total_total" not in text


def test_the_dispatchers_own_names_keep_the_convention() -> None:
    """Prefix, no ``_total`` in a counter's name, a unit on every histogram."""
    families = text_string_to_metric_families(exposition(Metrics()))
    own = [f for f in families if not f.name.startswith(("process_", "python_"))]
    assert own and all(f.name.startswith("fleetpulse_alerting_") for f in own)
    assert not [f.name for f in own if f.type == "counter" and f.name.endswith("_total")]
    assert all(f.name.endswith("_seconds") for f in own if f.type == "histogram")
