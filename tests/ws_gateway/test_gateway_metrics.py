"""The gateway's registry: names by convention and the process and Python runtime families."""

from __future__ import annotations

import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ws_gateway.metrics import GatewayMetrics

pytestmark = pytest.mark.unit


def exposition(metrics: GatewayMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_the_process_and_python_runtime_families_are_exported() -> None:
    text = exposition(GatewayMetrics(CollectorRegistry()))
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"python_info", "python_gc_objects_collected"} <= names
    if sys.platform.startswith("linux"):  # read from /proc
        assert {"process_cpu_seconds", "process_open_fds", "process_resident_memory_bytes"} <= names


def test_counters_are_exposed_with_total_once_and_their_labels() -> None:
    m = GatewayMetrics(CollectorRegistry())
    m.refused.labels("unauthorized").inc(2)
    m.messages_sent.inc(5)
    text = exposition(m)
    assert "# TYPE fleetpulse_gateway_refused_total counter" in text
    assert 'fleetpulse_gateway_refused_total{reason="unauthorized"} 2.0' in text
    assert "fleetpulse_gateway_messages_sent_total 5.0" in text
    assert "_total_total" not in text
    # the sample names the tests and dashboards read are those of before the rename in code
    assert m.registry.get_sample_value("fleetpulse_gateway_messages_sent_total") == 5.0


def test_the_gateways_own_names_keep_the_convention() -> None:
    """Prefix, no ``_total`` in a counter's name, a unit on every histogram."""
    families = text_string_to_metric_families(exposition(GatewayMetrics(CollectorRegistry())))
    own = [f for f in families if not f.name.startswith(("process_", "python_"))]
    assert own and all(f.name.startswith("fleetpulse_gateway_") for f in own)
    assert not [f.name for f in own if f.type == "counter" and f.name.endswith("_total")]
    assert all(f.name.endswith("_seconds") for f in own if f.type == "histogram")
