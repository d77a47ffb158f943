"""Where the throughput section's cluster runs keep their checkpoints (``--cluster-checkpoints``):
the local disk, or a local S3-compatible server (moto's, :mod:`fleetpulse.services.s3_server`)
through Flink's S3 filesystem plugin, as a cluster deployed on several machines must.

The store is pure data (:func:`local_store`, :func:`s3_store`): the checkpoint URI of a run,
the cluster's ``config.yaml`` additions and plugin folders. :func:`open_store` starts and stops
the server; :func:`checkpoint_stats` reads from a cluster's REST API where its jobs'
checkpoints went.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("local", "s3")
BUCKET = "fleetpulse-bench"


@dataclass(frozen=True)
class CheckpointStore:
    kind: str  # one of KINDS
    root: str  # a directory, or s3://bucket/prefix
    label: str  # what the report says about it
    cluster_config: dict[str, object] = field(default_factory=dict)
    plugins_dirs: tuple[Path, ...] = ()

    def location(self, name: str) -> str:
        """The ``--checkpoint-dir`` of one run (a folder of its own under the root)."""
        return f"{self.root.rstrip('/')}/{name}"


def local_store(root: Path) -> CheckpointStore:
    return CheckpointStore("local", str(root), "checkpoints on local disk")


def s3_store(s3_config: dict[str, object], bucket: str, plugins: Path) -> CheckpointStore:
    """Checkpoints in ``bucket`` of the S3 server ``s3_config`` (its ``s3.*`` Flink keys)
    describes, written by the S3 filesystem plugin under ``plugins``."""
    return CheckpointStore(
        "s3",
        f"s3://{bucket}/checkpoints",
        "checkpoints on S3 (local moto server)",
        cluster_config=dict(s3_config),
        plugins_dirs=(plugins,),
    )


@contextlib.contextmanager
def open_store(kind: str, work: Path) -> Iterator[tuple[CheckpointStore, Any]]:
    """The store of ``kind`` and its S3 server (None for ``local``): started with a fresh
    bucket, stopped on exit. Refuses ``s3`` without the S3 plugin the set-up fetches."""
    from bench.support import BenchError

    if kind not in KINDS:
        raise BenchError(f"--cluster-checkpoints: {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "local":
        yield local_store(work / "checkpoints"), None
        return
    from fleetpulse.services.s3_server import S3Server
    from fleetpulse.waiting import free_port
    from flink_jobs.runtime.jars import jvm_dir, plugins_dir

    plugins = plugins_dir()
    if plugins is None:
        raise BenchError(
            f"--cluster-checkpoints s3: no Flink S3 filesystem plugin under {jvm_dir()}/plugins "
            "(run ./dev.sh setup)"
        )
    server = S3Server(port=free_port())
    work.mkdir(parents=True, exist_ok=True)
    proc = server.start(work / "s3-server.log")
    try:
        server.create_bucket(BUCKET)
        yield s3_store(server.flink_config(), BUCKET, plugins), server
    finally:
        proc.stop()


def checkpoint_stats(rest_url: str) -> dict[str, Any]:
    """Completed checkpoints of the cluster's jobs and the last one's path, from its REST API
    (a finished job's checkpoint files may already be deleted; its statistics remain)."""
    from fleetpulse.services.flink import jobs_overview, rest_get

    completed, path = 0, None
    try:
        for job in jobs_overview(rest_url):
            stats = rest_get(rest_url, f"/jobs/{job['jid']}/checkpoints")
            completed += int(stats.get("counts", {}).get("completed", 0))
            latest = (stats.get("latest") or {}).get("completed") or {}
            path = latest.get("external_path") or path
    except (OSError, ValueError) as exc:  # the row stands without them
        return {"completed": None, "last_path": None, "error": repr(exc)[:300]}
    return {"completed": completed, "last_path": path}


def describe(store: CheckpointStore, stats: dict[str, Any] | None) -> str:
    """The report's words on a run's checkpoints: where, how many, the last one's path."""
    if not stats or stats.get("completed") is None:
        return f"{store.label} ({store.root})"
    last = f", last {stats['last_path']}" if stats.get("last_path") else ""
    return f"{store.label}: {stats['completed']} completed{last}"
