"""redis-server from Debian's package, on loopback, with its files in the data directory."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from fleetpulse import PlatformError
from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import check_port_free, wait_until


@dataclass
class RedisServer:
    data_dir: Path
    port: int
    persist: bool = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        exe = shutil.which("redis-server")
        if exe is None:
            raise PlatformError(
                "redis-server not found: run ./dev.sh setup (installs Debian's package)"
            )
        argv = [
            exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--appendonly",
            "no",
        ]
        # Snapshots keep the live picture across a restart of `up`; tests run without them.
        argv += ["--save", "60 1000"] if self.persist else ["--save", ""]
        return argv

    def start(self, log_path: Path, timeout_s: float = 30.0) -> ManagedProcess:
        check_port_free(self.port, "Redis")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        proc = ManagedProcess("redis", self.argv(), log_path).start()

        def ready() -> bool:
            import redis

            if not proc.alive():
                raise PlatformError(f"redis-server exited during start-up:\n{proc.log_tail()}")
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())

        try:
            wait_until(ready, timeout_s, f"Redis on port {self.port}")
        except Exception:
            proc.stop()
            raise
        return proc
