"""The dispatcher's /metrics and /healthz server: where it listens, and a clear refusal."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

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
    )
    assert proc.returncode == 1, proc.stderr
    assert "cannot serve metrics on 192.0.2.1:0" in proc.stderr
    assert "--metrics-host" in proc.stderr
    assert "Traceback" not in proc.stderr
