"""Every Redis client of fleetpulse takes a ``rediss://`` URL with a password: the jobs'
writers, the exporter's reader and the websocket gateway, against a real TLS-only, password
protected redis-server started by the project's launcher."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from pathlib import Path

import pytest
import redis

from fleetpulse.exporter.sources import read_redis, redis_client
from fleetpulse.services.redis_server import RedisServer, RedisTls
from fleetpulse.waiting import free_port
from flink_jobs.delay.redis_writer import RedisDelayWriter
from flink_jobs.tracking.redis_writer import RedisTruckWriter
from udfs.shipment_state import DelayScore, RegionShipmentCounted
from ws_gateway.server import Gateway
from ws_gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration


def self_signed(directory: Path) -> RedisTls:
    """A certificate for 127.0.0.1 that is its own CA (test only)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "redis.crt", directory / "redis.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return RedisTls(cert_file, key_file, cert_file)


def test_every_client_takes_a_rediss_url_with_a_password(tmp_path: Path) -> None:
    server = RedisServer(
        tmp_path / "redis",
        free_port(),
        persist=False,
        password="pass/with@odd:chars",
        tls=self_signed(tmp_path / "tls"),
    )
    url = server.url
    assert url.startswith("rediss://") and "odd" not in server.display_url
    proc = server.start(tmp_path / "redis.log")
    try:
        with pytest.raises(redis.ConnectionError):  # no plain-text access
            redis.Redis(port=server.port, socket_timeout=1).ping()

        delay = RedisDelayWriter(url)
        delay.apply([DelayScore("S1", 3), RegionShipmentCounted("WEST", "S1")])
        assert delay.late_counts()[3] == 1
        delay.close()
        trucks = RedisTruckWriter(url)
        trucks.write_region_counts({"WEST": {"active_trucks": 7}})
        trucks.close()

        client = redis_client(url, 10)  # the exporter's and `fleetpulse status`' reader
        reading = read_redis(client, ("WEST",))
        client.close()
        assert reading.delayed[3] == 1
        (west,) = reading.regions
        assert west.trucks["active"] == 7 and west.shipments == 1

        async def gateway_starts() -> None:
            gw = Gateway(GatewaySettings(redis_url=url, port=0, auth=False))
            await gw.start()  # raises GatewayError if it cannot reach Redis
            await gw.stop()

        asyncio.run(asyncio.wait_for(gateway_starts(), 60))
    finally:
        proc.stop()
