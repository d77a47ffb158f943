"""A local S3-compatible server (moto's standalone server, from PyPI) on loopback: where the
tests put checkpoints on ``s3://`` without a cloud account."""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fleetpulse import PlatformError
from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import check_port_free, wait_until

# moto accepts any credentials; these are what the clients present.
ACCESS_KEY = "fleetpulse"
SECRET_KEY = "fleetpulse-local-s3"


@dataclass
class S3Server:
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def flink_config(self) -> dict[str, object]:
        """The Flink configuration (config.yaml keys) of its S3 filesystem plugin for this
        server: its endpoint, path-style bucket addressing, the credentials."""
        return {
            "s3.endpoint": self.endpoint,
            "s3.path.style.access": True,
            "s3.access-key": ACCESS_KEY,
            "s3.secret-key": SECRET_KEY,
        }

    def create_bucket(self, name: str) -> None:
        req = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (at most 1,000: what the tests need)."""
        import xml.etree.ElementTree as ElementTree

        url = f"{self.endpoint}/{bucket}?list-type=2&prefix={prefix}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            tree = ElementTree.fromstring(resp.read())
        return [el.text or "" for el in tree.iter() if el.tag.endswith("}Key")]

    def start(self, log_path: Path, timeout_s: float = 60.0) -> ManagedProcess:
        check_port_free(self.port, "the S3 server")
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        proc = ManagedProcess("s3", argv, log_path).start()

        def ready() -> bool:
            if not proc.alive():
                raise PlatformError(f"the S3 server exited during start-up:\n{proc.log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint, timeout=1):
                    return True
            except OSError:
                return False

        try:
            wait_until(ready, timeout_s, f"the S3 server on port {self.port}")
        except Exception:
            proc.stop()
            raise
        return proc
