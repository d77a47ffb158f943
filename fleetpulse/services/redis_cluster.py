"""A local Redis Cluster of ``redis-server`` processes (Debian's package) on loopback, for the
tests and benchmarks that prove fleetpulse runs against a cluster (docs/redis-cluster.md).

Each master is a :class:`RedisServer` started with ``cluster-enabled``; ``redis-cli --cluster
create`` then spreads the 16,384 slots over them. Clients connect to any node's URL: the
project's clients find out that it is a cluster (``flink_jobs.runtime.redis_client``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from fleetpulse import PlatformError
from fleetpulse.services.process import ManagedProcess
from fleetpulse.services.redis_server import RedisServer
from fleetpulse.waiting import free_port, wait_until


@dataclass
class ClusterNode(RedisServer):
    """A cluster-enabled master: its node table lives in its own directory."""

    def argv(self, from_snapshot: bool = False) -> list[str]:
        return [
            *super().argv(from_snapshot),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
        ]


@dataclass
class RedisCluster:
    """``masters`` cluster-enabled nodes under ``data_dir`` (no replicas: enough to prove
    that every key a script touches is declared and that clients follow slot redirects)."""

    data_dir: Path
    masters: int = 3
    password: str = ""
    nodes: list[ClusterNode] = field(default_factory=list)
    procs: list[ManagedProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The first node's URL: any node's would do."""
        return self.nodes[0].url

    def start(self, timeout_s: float = 60.0) -> RedisCluster:
        if self.masters < 3:
            raise PlatformError("a Redis Cluster needs at least 3 masters")
        cli = shutil.which("redis-cli")
        if cli is None:
            raise PlatformError("redis-cli not found: run ./dev.sh setup (Debian's redis-tools)")
        try:
            for i in range(self.masters):
                node = ClusterNode(
                    self.data_dir / f"node{i}",
                    port=free_port(),
                    persist=False,
                    password=self.password,
                )
                self.nodes.append(node)
                self.procs.append(node.start(self.data_dir / f"node{i}.log"))
            argv = [cli, "--cluster", "create"]
            argv += [f"127.0.0.1:{n.port}" for n in self.nodes]
            argv += ["--cluster-replicas", "0", "--cluster-yes"]
            if self.password:
                argv += ["-a", self.password, "--no-auth-warning"]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
            if done.returncode != 0:
                raise PlatformError(
                    f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}"
                )
            wait_until(self._ok, timeout_s, "Redis Cluster state ok on every node")
        except BaseException:
            self.stop()
            raise
        return self

    def _ok(self) -> bool:
        import redis

        for node in self.nodes:
            client = redis.Redis.from_url(node.url, socket_timeout=1)
            try:
                info = cast("dict[str, Any]", client.cluster("info"))
            finally:
                client.close()
            if info.get("cluster_state") != "ok":
                return False
        return True

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.stop()
        self.procs.clear()


@contextlib.contextmanager
def local_cluster(data_dir: Path, masters: int = 3, password: str = "") -> Iterator[RedisCluster]:
    cluster = RedisCluster(data_dir, masters, password).start()
    try:
        yield cluster
    finally:
        cluster.stop()
