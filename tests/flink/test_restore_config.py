"""What the restore flags put into the Flink configuration a job starts with."""

from __future__ import annotations

from pathlib import Path

import pytest

from flink_jobs.runtime.environment import flink_configuration
from flink_jobs.tracking.settings import TrackingSettings

pytestmark = pytest.mark.flink

IGNORE = "execution.state-recovery.ignore-unclaimed-state"


def test_allow_non_restored_state_drops_only_what_the_new_graph_lacks(tmp_path: Path) -> None:
    checkpoint = tmp_path / "chk-7"
    checkpoint.mkdir()
    plain = flink_configuration(TrackingSettings.from_argv(["--restore", str(checkpoint)]), "job")
    assert plain.get_string("execution.state-recovery.path", "") == checkpoint.as_uri()
    assert plain.get_string(IGNORE, "false") == "false"  # Flink's default: refuse to drop

    lenient = flink_configuration(
        TrackingSettings.from_argv(["--restore", str(checkpoint), "--allow-non-restored-state"]),
        "job",
    )
    assert lenient.get_string(IGNORE, "false") == "true"
    # without a restore there is nothing to drop, and the flag changes nothing
    fresh = flink_configuration(TrackingSettings.from_argv(["--allow-non-restored-state"]), "job")
    assert fresh.get_string(IGNORE, "unset") == "unset"
