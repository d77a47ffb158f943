"""Finding the newest retained checkpoint, on the local disk or any Flink filesystem.

Each run of a job writes its checkpoints under ``<checkpoint dir>/<job id>/chk-<n>``, and a
completed one holds a ``_metadata`` file; retained ones survive the job (externalized
checkpoints). ``--restore latest`` takes the newest ``_metadata`` by modification time,
whichever run wrote it. On a remote filesystem (``s3://``, ``hdfs://``, ``gs://``) the
directory is listed through Flink's own ``FileSystem`` in the client JVM, so whatever
filesystem plugin the cluster has (and its credentials in the Flink configuration) works here
too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flink_jobs import JobError

METADATA = "_metadata"


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The most recently completed retained checkpoint under a local directory."""
    metas = list(checkpoint_dir.glob(f"*/chk-*/{METADATA}"))
    if not metas:
        return None
    return max(metas, key=lambda p: p.stat().st_mtime_ns).parent


def newest_checkpoint(listing: dict[str, dict[str, int | None]]) -> str | None:
    """The newest completed checkpoint of a listing ``{job dir: {chk dir: _metadata mtime or
    None}}`` (pure: the choice :func:`latest_remote_checkpoint` makes)."""
    done = [
        (mtime, chk)
        for checkpoints in listing.values()
        for chk, mtime in checkpoints.items()
        if mtime is not None and chk.rstrip("/").rsplit("/", 1)[-1].startswith("chk-")
    ]
    return max(done)[1] if done else None


def latest_remote_checkpoint(uri: str) -> str | None:
    """The URI of the most recently completed retained checkpoint under ``uri``, listed with
    Flink's filesystem for its scheme (None: nothing there yet, a first start)."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    initialize_filesystems(jvm)
    root = jvm.org.apache.flink.core.fs.Path(uri)
    try:
        fs = root.getFileSystem()
    except Exception as exc:
        if "UnsupportedFileSystemSchemeException" not in str(exc):
            raise
        scheme = uri.split(":", 1)[0]
        raise JobError(
            f"--restore latest: no Flink filesystem for {scheme}:// here. Its plugin (for s3://: "
            "flink-s3-fs-presto, which ./dev.sh setup puts in ~/.cache/fleetpulse/jvm/plugins) "
            "must be in its own folder under FLINK_PLUGINS_DIR "
            f"({os.environ.get('FLINK_PLUGINS_DIR', 'unset')})"
        ) from None
    if not fs.exists(root):
        return None
    listing: dict[str, dict[str, int | None]] = {}
    for job in fs.listStatus(root) or []:
        if not job.isDir():
            continue
        checkpoints: dict[str, int | None] = {}
        for chk in fs.listStatus(job.getPath()) or []:
            if not chk.isDir():
                continue
            meta = jvm.org.apache.flink.core.fs.Path(chk.getPath(), METADATA)
            checkpoints[chk.getPath().toString()] = (
                fs.getFileStatus(meta).getModificationTime() if fs.exists(meta) else None
            )
        listing[job.getPath().toString()] = checkpoints
    return newest_checkpoint(listing)


def initialize_filesystems(jvm: Any, conf: Any = None) -> None:
    """Load Flink's filesystem plugins (``FLINK_PLUGINS_DIR``, by default the distribution's
    ``plugins/``) with ``conf`` (a Java Configuration; by default the client's, from
    ``FLINK_CONF_DIR``), as a cluster process does at start."""
    if conf is None:
        conf = jvm.org.apache.flink.configuration.GlobalConfiguration.loadConfiguration()
    plugins = jvm.org.apache.flink.core.plugin.PluginUtils.createPluginManagerFromRootFolder(conf)
    jvm.org.apache.flink.core.fs.FileSystem.initialize(conf, plugins)
