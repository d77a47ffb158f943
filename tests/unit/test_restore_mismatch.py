"""A checkpoint written by a version of a job with other operators (an upgrade) cannot be
restored; the job says so and what to do, instead of ending in Flink's stack trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from flink_jobs import JobError
from flink_jobs.runtime.environment import execute
from flink_jobs.runtime.settings import JobSettings

pytestmark = pytest.mark.unit

FLINK_SAYS = (
    "org.apache.flink.runtime.client.JobInitializationException: Could not start "
    "the JobMaster. Caused by: java.lang.IllegalStateException: Failed to rollback to "
    "checkpoint/savepoint file:/x/chk-9. Cannot map checkpoint/savepoint state for "
    "operator b7a7c46d26d0cd2ebcae1dfa7d9a1d7b to the new program, because the "
    "operator is not available in the new program."
)


class FailingEnvironment:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def execute(self, job_name: str) -> None:
        raise self.error


def a_checkpoint(root: Path) -> Path:
    chk = root / "723f77c7" / "chk-9"
    chk.mkdir(parents=True)
    (chk / "_metadata").touch()
    return chk


def test_latest_checkpoint_of_other_operators_names_it_and_the_way_out(tmp_path: Path) -> None:
    chk = a_checkpoint(tmp_path)
    settings = JobSettings(checkpoint_dir=str(tmp_path), restore="latest")
    with pytest.raises(JobError) as refused:
        execute(
            FailingEnvironment(RuntimeError(FLINK_SAYS)),
            "fleetpulse-tracking",  # type: ignore[arg-type]
            settings,
        )
    message = str(refused.value)
    assert message.startswith("--restore latest: ")
    assert str(chk) in message and "fleetpulse-tracking" in message
    assert f"move {tmp_path} aside" in message


def test_a_given_checkpoint_of_other_operators_says_start_without_it(tmp_path: Path) -> None:
    chk = a_checkpoint(tmp_path)
    settings = JobSettings(checkpoint_dir=str(tmp_path), restore=str(chk))
    with pytest.raises(JobError, match="start without --restore"):
        execute(
            FailingEnvironment(RuntimeError(FLINK_SAYS)),
            "fleetpulse-delay",  # type: ignore[arg-type]
            settings,
        )


def test_other_failures_are_not_rewritten(tmp_path: Path) -> None:
    settings = JobSettings(checkpoint_dir=str(tmp_path), restore="latest")
    with pytest.raises(RuntimeError, match="Kafka is down"):
        execute(
            FailingEnvironment(RuntimeError("Kafka is down")),
            "fleetpulse-tracking",  # type: ignore[arg-type]
            settings,
        )


def test_restore_latest_without_a_directory_of_its_own_is_refused() -> None:
    """The cluster's checkpoint directory is shared by every job: "latest" there could be
    another job's checkpoint, so the job asks for its own directory instead of guessing."""
    from flink_jobs.runtime.environment import resolve_restore

    with pytest.raises(JobError, match="--restore latest needs --checkpoint-dir.*another job"):
        resolve_restore(JobSettings(restore="latest"))
