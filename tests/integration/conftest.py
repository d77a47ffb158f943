"""Integration tests import their helpers from this folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A local S3-compatible server (moto's) for checkpoints on s3://, always stopped."""
    from fleetpulse.services.s3_server import S3Server
    from fleetpulse.waiting import free_port

    server = S3Server(port=free_port())
    proc = server.start(tmp_path_factory.mktemp("s3") / "s3.log")
    try:
        yield server
    finally:
        proc.stop()
