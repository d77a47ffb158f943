"""`--restore latest` on a checkpoint directory given as a URI: listed through Flink's own
filesystem in the client JVM (here the local one, through its file:// URI; s3:// is exercised
against a local S3 server in tests/integration/test_s3_checkpoints.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flink_jobs.runtime.checkpoints import latest_remote_checkpoint, newest_checkpoint

pytestmark = pytest.mark.flink


def test_the_newest_completed_checkpoint_is_chosen_across_runs() -> None:
    listing = {
        "s3://b/c/run1": {"s3://b/c/run1/chk-40": 100, "s3://b/c/run1/chk-41": None},
        "s3://b/c/run2": {"s3://b/c/run2/chk-3": 250, "s3://b/c/run2/shared": 900},
        "s3://b/c/run3": {},
    }
    # chk-41 never completed (no _metadata), "shared" is not a checkpoint
    assert newest_checkpoint(listing) == "s3://b/c/run2/chk-3"
    assert newest_checkpoint({"x": {"x/chk-1": None}}) is None


def test_a_directory_listed_through_flinks_filesystem_gives_its_newest_checkpoint(
    tmp_path: Path,
) -> None:
    root = tmp_path / "checkpoints"
    assert latest_remote_checkpoint(root.as_uri()) is None  # nothing there yet: a first start
    for run, chk, mtime in (("a", "chk-5", 1_000), ("b", "chk-2", 3_000), ("b", "chk-3", None)):
        d = root / run / chk
        d.mkdir(parents=True)
        if mtime is not None:
            (d / "_metadata").write_bytes(b"x")
            os.utime(d / "_metadata", (mtime, mtime))
    (root / "b" / "shared").mkdir()
    found = latest_remote_checkpoint(root.as_uri())
    assert found is not None and found.rstrip("/").endswith("/b/chk-2")
