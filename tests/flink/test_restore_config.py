"""What the restore flags put into the Flink configuration a job starts with."""

from __future__ import annotations

import os
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


EMBEDDED_DEFAULTS = (
    "python.executable",
    "parallelism.default",
    "restart-strategy.type",
    "execution.checkpointing.interval",
    "execution.checkpointing.dir",
)
REQUIRED = {
    "python.execution-mode": "thread",
    "execution.checkpointing.mode": "EXACTLY_ONCE",
    "execution.checkpointing.unaligned.enabled": "false",
    "table.exec.uid.generation": "ALWAYS",
}


def test_a_submitted_job_leaves_to_the_cluster_what_its_flags_do_not_set() -> None:
    cfg = flink_configuration(TrackingSettings(), "job", embedded=False)
    assert {key: cfg.get_string(key, "unset") for key in EMBEDDED_DEFAULTS} == dict.fromkeys(
        EMBEDDED_DEFAULTS, "unset"
    )
    assert {key: cfg.get_string(key, "unset") for key in REQUIRED} == REQUIRED


def test_flags_set_what_they_say_whether_submitted_or_embedded() -> None:
    settings = TrackingSettings.from_argv(
        ["--parallelism", "3", "--checkpoint-interval-ms", "4000", "--restart-attempts", "0"]
    )
    for embedded in (False, True):
        cfg = flink_configuration(settings, "job", embedded=embedded)
        assert cfg.get_string("parallelism.default", "") == "3"
        assert cfg.get_string("execution.checkpointing.interval", "") == "4000 ms"
        assert cfg.get_string("restart-strategy.type", "") == "fixed-delay"
        assert cfg.get_string("restart-strategy.fixed-delay.attempts", "") == "0"


def test_an_embedded_job_fills_in_its_own_defaults() -> None:
    cfg = flink_configuration(TrackingSettings(), "job", embedded=True)
    assert cfg.get_string("parallelism.default", "") == "1"
    assert cfg.get_string("execution.checkpointing.interval", "") == "10000 ms"
    assert cfg.get_string("restart-strategy.fixed-delay.attempts", "") == str(2**31 - 1)
    assert cfg.get_string("execution.checkpointing.dir", "").startswith("file:/")
    assert cfg.get_string("python.executable", "") != ""


def test_a_remote_checkpoint_directory_and_restore_point_are_passed_as_uris(tmp_path: Path) -> None:
    settings = TrackingSettings.from_argv(
        [
            "--checkpoint-dir",
            "s3://fleet/checkpoints",
            "--restore",
            "s3://fleet/checkpoints/a/chk-9",
        ]
    )
    assert settings.checkpoint_path is None and settings.checkpoint_uri == "s3://fleet/checkpoints"
    cfg = flink_configuration(settings, "job", embedded=False)
    assert cfg.get_string("execution.checkpointing.dir", "") == "s3://fleet/checkpoints"
    assert cfg.get_string("execution.state-recovery.path", "") == "s3://fleet/checkpoints/a/chk-9"
    assert cfg.get_string("execution.checkpointing.num-retained", "") == "3"
    local = TrackingSettings.from_argv(["--checkpoint-dir", f"file://{tmp_path}/c"])
    assert (
        local.checkpoint_path == tmp_path / "c"
        and local.checkpoint_uri == (tmp_path / "c").as_uri()
    )


def test_the_set_ups_filesystem_plugins_replace_the_wheels_default_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PyFlink points FLINK_PLUGINS_DIR at the wheel's plugins (no filesystems) when imported;
    a job started from such an environment must still find the S3 plugin."""
    import pyflink

    from flink_jobs.runtime import environment

    ours = tmp_path / "plugins"
    (ours / "s3-fs-presto").mkdir(parents=True)
    (ours / "s3-fs-presto" / "flink-s3-fs-presto.jar").touch()
    monkeypatch.setattr(environment, "plugins_dir", lambda: ours)
    wheel_default = str(Path(pyflink.__file__).resolve().parent / "plugins")
    for before, after in ((None, str(ours)), (wheel_default, str(ours)), ("/srv/x", "/srv/x")):
        if before is None:
            monkeypatch.delenv("FLINK_PLUGINS_DIR", raising=False)
        else:
            monkeypatch.setenv("FLINK_PLUGINS_DIR", before)
        environment.use_filesystem_plugins()
        assert os.environ["FLINK_PLUGINS_DIR"] == after


@pytest.mark.parametrize(
    ("location", "path"),
    [
        ("ckpt/a", "ckpt/a"),
        ("/tmp/ck", "/tmp/ck"),
        ("file:/tmp/ck", "/tmp/ck"),  # as `flink savepoint` prints it
        ("file:///tmp/ck", "/tmp/ck"),
        ("file://localhost/tmp/ck", "/tmp/ck"),
        ("FILE:///tmp/a%20b", "/tmp/a b"),
        ("s3://bucket/ck", None),
        ("hdfs://nn:8020/ck", None),
    ],
)
def test_a_location_is_local_in_every_form_flink_prints(location: str, path: str | None) -> None:
    from flink_jobs.runtime.settings import local_path

    assert local_path(location) == (Path(path) if path is not None else None)


def test_an_embedded_job_takes_only_filesystem_and_checkpoint_keys_from_flink_conf_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A cluster's config.yaml would give a MiniCluster one slot, fixed ports and HA."""
    (tmp_path / "config.yaml").write_text(
        "s3.endpoint: http://127.0.0.1:9000\n"
        "execution.checkpointing.interval: 7 s\n"
        "taskmanager.numberOfTaskSlots: 1\n"
        "rest.port: 8081\n"
        "high-availability.type: kubernetes\n"
    )
    monkeypatch.setenv("FLINK_CONF_DIR", str(tmp_path))
    cfg = flink_configuration(TrackingSettings(), "job", embedded=True)
    assert cfg.get_string("s3.endpoint", "") == "http://127.0.0.1:9000"
    assert cfg.get_string("execution.checkpointing.interval", "") == "7 s"  # not the default
    for key in ("taskmanager.numberOfTaskSlots", "rest.port", "high-availability.type"):
        assert not cfg.contains_key(key), key


def test_the_plugins_survive_pyflink_launching_its_gateway_without_flink_home() -> None:
    """Run as `python -m flink_jobs...` from a plain shell (no FLINK_HOME), PyFlink resolves its
    home when the gateway starts, which used to reset FLINK_PLUGINS_DIR to the wheel's."""
    import subprocess
    import sys

    from flink_jobs.runtime.jars import plugins_dir

    if plugins_dir() is None:
        pytest.skip("the set-up's plugins are not in the JVM cache")
    env = {k: v for k, v in os.environ.items() if k not in ("FLINK_HOME", "FLINK_PLUGINS_DIR")}
    script = (
        "import os\n"
        "from flink_jobs.runtime import environment\n"
        "environment.use_filesystem_plugins()\n"
        "from pyflink.java_gateway import get_gateway\n"
        "get_gateway()\n"
        "print(os.environ['FLINK_PLUGINS_DIR'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip().splitlines()[-1] == str(plugins_dir()), done.stderr[-2000:]
