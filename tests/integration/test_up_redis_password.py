"""`up`'s components reach its password-protected Redis: the gateway and the exporter get the
URL with the password in their environment, never on their command line."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from fleetpulse.config import UpSettings
from fleetpulse.services.redis_server import RedisServer, redis_password
from fleetpulse.supervisor import MonitoringSettings, Supervisor
from fleetpulse.waiting import free_port, wait_until

pytestmark = pytest.mark.integration


def test_gateway_and_exporter_read_redis_with_ups_password(tmp_path: Path) -> None:
    data = tmp_path / "data"
    password = redis_password(data)
    settings = UpSettings(
        data_dir=data,
        kafka_port=free_port(),  # nothing there: the exporter reports Redis all the same
        redis_port=free_port(),
        gateway_port=free_port(),
        redis_password=password,
    )
    server = RedisServer(data / "redis", settings.redis_port, password=password)
    redis_proc = server.start(tmp_path / "redis.log")
    exporter_port = free_port()
    sup = Supervisor(
        settings, say=lambda _m: None, monitoring=MonitoringSettings(exporter_port=exporter_port)
    )
    try:
        sup._start_gateway()  # exits if it cannot read Redis
        sup._start_exporter()
        metrics = f"http://127.0.0.1:{exporter_port}/metrics"
        wait_until(
            lambda: (
                b"fleetpulse_delayed_shipments{"
                in urllib.request.urlopen(metrics, timeout=30).read()
            ),
            60,
            "the exporter's Redis reading",
            interval_s=0.5,
        )
        for c in sup.components:
            assert c.process.alive(), c.process.log_tail()
            assert password not in Path(f"/proc/{c.process.pid}/cmdline").read_text()
            assert password not in c.process.log_path.read_text()
    finally:
        sup.stop_all()
        redis_proc.stop()
