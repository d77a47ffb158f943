"""Job settings: one model per job; flags over its own FLEETPULSE_* variables over defaults;
another job's flags refused, its variables ignored; bad values name the flag or variable."""

from __future__ import annotations

import importlib
import pickle
import re
from pathlib import Path

import cloudpickle
import pytest
from pydantic import ValidationError

from fleetpulse.job_settings import JOBS, reference
from flink_jobs.delay.settings import DelaySettings
from flink_jobs.runtime.settings import (
    BufferedWriterSettings,
    JobSettings,
    env_name,
    fields_of,
    flag_of,
    shown_default,
)
from flink_jobs.tracking.settings import TrackingSettings
from udfs.record_age import DEFAULT_MAX_PING_AGE_S, DEFAULT_MAX_SCAN_AGE_S

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def refused(
    model: type[JobSettings], argv: list[str], capsys: pytest.CaptureFixture[str], **env: str
) -> str:
    """The usage error (exit status 2) ``model`` gives for ``argv`` and ``env``."""
    with pytest.raises(SystemExit) as exit_info:
        model.from_argv(argv, environ=env)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_flags_override_environment_which_overrides_defaults() -> None:
    env = {"FLEETPULSE_PARALLELISM": "3", "FLEETPULSE_REDIS_URL": "redis://example:1/0"}
    settings = TrackingSettings.from_argv(["--parallelism", "2"], environ=env)
    assert settings.parallelism == 2  # the flag
    assert settings.redis_url == "redis://example:1/0"  # the variable
    assert settings.group_id == "fleetpulse-tracking"  # the default


def test_each_job_has_its_own_defaults_which_yield_to_environment_and_flags() -> None:
    tracking, delay = TrackingSettings.from_argv([], {}), DelaySettings.from_argv([], {})
    assert (tracking.group_id, delay.group_id) == ("fleetpulse-tracking", "fleetpulse-delay")
    assert (tracking.buffer_timeout_ms, delay.buffer_timeout_ms) == (100, 10)
    assert tracking.max_record_age_s == DEFAULT_MAX_PING_AGE_S == 24 * 3600
    assert delay.max_record_age_s == DEFAULT_MAX_SCAN_AGE_S == 7 * 24 * 3600
    assert tracking.truck_state_ttl_s == 7 * 24 * 3600
    env = {"FLEETPULSE_BUFFER_TIMEOUT_MS": "20"}
    assert DelaySettings.from_argv([], env).buffer_timeout_ms == 20
    assert DelaySettings.from_argv(["--buffer-timeout-ms", "0"], env).buffer_timeout_ms == 0


def test_a_bad_environment_value_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(DelaySettings, [], capsys, FLEETPULSE_REDIS_FLUSH_MS="fast")
    expected = "FLEETPULSE_REDIS_FLUSH_MS (--redis-flush-ms): 'fast' is not a valid int"
    assert f"environment variable {expected}" in err
    err = refused(TrackingSettings, [], capsys, FLEETPULSE_BOUNDED="maybe")
    assert "FLEETPULSE_BOUNDED (--bounded): 'maybe' is not a valid bool" in err
    err = refused(TrackingSettings, [], capsys, FLEETPULSE_BUNDLE_SHARDS="0")
    assert "FLEETPULSE_BUNDLE_SHARDS (--bundle-shards) must be at least 1" in err


def test_boolean_settings_read_words_from_the_environment_and_both_flag_forms() -> None:
    assert TrackingSettings.from_argv([], {"FLEETPULSE_BOUNDED": "yes"}).bounded is True
    assert (
        TrackingSettings.from_argv(["--no-bounded"], {"FLEETPULSE_BOUNDED": "1"}).bounded is False
    )
    assert DelaySettings.from_argv([], {"FLEETPULSE_AT_RISK": "false"}).at_risk is False
    assert DelaySettings.from_argv(["--no-at-risk"], {}).at_risk is False
    assert DelaySettings.from_argv([], {}).at_risk is True


@pytest.mark.parametrize(
    ("model", "argv", "flag", "job"),
    [
        (DelaySettings, ["--bundle-shards", "4"], "--bundle-shards", "delay"),
        (DelaySettings, ["--geofence-topic=fences"], "--geofence-topic", "delay"),
        (TrackingSettings, ["--redis-flush-ms", "50"], "--redis-flush-ms", "tracking"),
        (TrackingSettings, ["--parallelism", "2", "--no-at-risk"], "--no-at-risk", "tracking"),
    ],
)
def test_a_flag_of_the_other_job_is_refused_by_name(
    model: type[JobSettings],
    argv: list[str],
    flag: str,
    job: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = refused(model, argv, capsys)
    assert f"{flag} does not apply to the {job} job (not one of its settings)" in err


def test_a_misspelt_flag_is_refused_with_the_likely_one(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(DelaySettings, ["--paralelism", "2"], capsys)
    assert "--paralelism does not apply to the delay job" in err
    assert "did you mean --parallelism?" in err


def test_a_variable_of_the_other_job_is_ignored() -> None:
    """docker-compose gives every service one environment: even a value that would be bad for
    the other job changes nothing here."""
    delay = DelaySettings.from_argv([], {"FLEETPULSE_BUNDLE_SHARDS": "0"})
    assert not hasattr(delay, "bundle_shards")
    tracking = TrackingSettings.from_argv([], {"FLEETPULSE_REDIS_FLUSH_MS": "fast"})
    assert not hasattr(tracking, "redis_flush_ms")


def test_a_setting_of_another_job_is_refused_in_code_too() -> None:
    with pytest.raises(ValidationError, match="redis_flush_ms"):
        TrackingSettings(redis_flush_ms=50)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="bundle_shards"):
        DelaySettings(bundle_shards=4)  # type: ignore[call-arg]


def test_a_bad_flag_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(TrackingSettings, ["--parallelism", "0"], capsys)
    assert "--parallelism must be at least 1, not 0" in err
    err = refused(TrackingSettings, ["--parallelism", "two"], capsys)
    assert "--parallelism: 'two' is not a valid int" in err
    err = refused(DelaySettings, ["--checkpoint-interval-ms", "99"], capsys)
    assert "--checkpoint-interval-ms must be at least 100" in err


def test_every_bad_value_is_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(TrackingSettings, ["--parallelism", "0"], capsys, FLEETPULSE_BUNDLE_FLUSH_MS="0")
    assert "--parallelism must be at least 1" in err
    assert "FLEETPULSE_BUNDLE_FLUSH_MS (--bundle-flush-ms) must be at least 1" in err


@pytest.mark.parametrize("flag", ["--buffer-timeout-ms", "--detection-slack-ms"])
def test_a_negative_duration_is_refused(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"{flag} must be 0 or more" in refused(TrackingSettings, [flag, "-1"], capsys)
    assert TrackingSettings.from_argv([flag, "0"], {}) is not None


@pytest.mark.parametrize(
    ("flag", "bad", "message"),
    [
        ("--bundle-shards", "0", "--bundle-shards must be at least 1"),
        ("--bundle-max-records", "0", "--bundle-max-records must be at least 1"),
        ("--bundle-flush-ms", "0", "--bundle-flush-ms must be at least 1"),
        ("--trucks-in-memory", "-1", "--trucks-in-memory must be 0 or more"),
    ],
)
def test_bad_bundle_settings_are_refused_by_name(
    flag: str, bad: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in refused(TrackingSettings, [flag, bad], capsys)
    assert TrackingSettings.from_argv([flag, "1"], {}) is not None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fast", "--cpus 'fast': 'fast' is not a CPU number or range"),
        ("4096", "--cpus '4096': CPU 4096 is not available here"),
    ],
)
def test_unusable_cpus_are_refused(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in refused(DelaySettings, ["--cpus", value], capsys)


def test_no_cpus_means_no_pinning() -> None:
    assert TrackingSettings.from_argv([], {}).cpus == ""
    assert TrackingSettings.from_argv(["--cpus", "0"], {}).cpus == "0"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-record-age-s", "0"], "--max-record-age-s must be at least 1"),
        (["--truck-state-ttl-s", "600"], "--truck-state-ttl-s must be at least 3600"),
    ],
)
def test_bad_state_bounds_are_refused_by_name(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in refused(TrackingSettings, flags, capsys)


def test_the_delay_config_is_built_from_flags_and_environment() -> None:
    settings = DelaySettings.from_argv(
        [
            "--expire-after-promise-s",
            "86400",
            "--max-scans-per-shipment",
            "50",
            "--attempts-within-s",
            "3600",
            "--at-risk-min-speed-kph",
            "7.5",
            "--fix-interval-s",
            "600",
        ],
        {"FLEETPULSE_STUCK_AFTER_S": "7200"},
    )
    cfg = settings.delay_config
    assert (cfg.expire_after_promise_s, cfg.max_scans_per_shipment) == (86400, 50)
    assert (cfg.failed_attempts_within_s, cfg.stuck_after_s) == (3600, 7200)
    assert cfg.at_risk_min_speed_kph == 7.5
    assert settings.feed_config.fix_interval_s == 600


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["--max-scans-per-shipment", "0"],
            {},
            "--max-scans-per-shipment '0': max_scans_per_shipment must be at least 1",
        ),
        (["--attempts-within-s", "-1"], {}, "--attempts-within-s '-1': failed_attempts_within_s"),
        (
            [],
            {"FLEETPULSE_AT_RISK_MIN_SPEED_KPH": "nan"},
            "FLEETPULSE_AT_RISK_MIN_SPEED_KPH (--at-risk-min-speed-kph) 'nan': "
            "at_risk_min_speed_kph nan outside",
        ),
    ],
)
def test_a_bad_delay_threshold_names_the_flag_and_the_field(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in refused(DelaySettings, argv, capsys, **env)


@pytest.mark.parametrize("model", JOBS)
def test_help_lists_every_setting_with_its_default_and_variable(
    model: type[JobSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        model.from_argv(["--help"], {})
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # unwrapped
    for name, info in fields_of(model).items():
        assert info.description, name
        entry = f"{info.description} [default: {shown_default(info)}] [env: {env_name(name)}]"
        assert re.search(f"{flag_of(name)}[ ,]", text) and entry in text, name


@pytest.mark.parametrize(
    ("module", "own", "foreign"),
    [
        ("flink_jobs.tracking.job", "FLEETPULSE_BUNDLE_SHARDS", "--no-at-risk"),
        ("flink_jobs.delay.job", "FLEETPULSE_NO_SCAN_AFTER_S", "--bundle-shards"),
    ],
)
def test_the_job_commands_use_their_settings(
    module: str, own: str, foreign: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m <module>`` runs ``main``, which stops at a bad flag before any Flink."""
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and own in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([foreign])
    assert exit_info.value.code == 2 and f"{foreign} does not apply to" in capsys.readouterr().err


@pytest.mark.parametrize(
    "settings", [TrackingSettings(bundle_shards=4), DelaySettings(at_risk=False)]
)
def test_settings_are_frozen_plain_and_picklable(settings: JobSettings) -> None:
    with pytest.raises(AttributeError):
        settings.parallelism = 2  # type: ignore[misc]
    assert vars(settings)["bounded"] is False  # a plain attribute: the hot loops read them
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert cloudpickle.loads(cloudpickle.dumps(settings)) == settings


def test_the_writer_setting_belongs_to_the_jobs_with_the_writer() -> None:
    assert issubclass(DelaySettings, BufferedWriterSettings)
    assert not issubclass(TrackingSettings, BufferedWriterSettings)


def test_the_configuration_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == reference(), (
        "docs/configuration.md is stale: run python -m fleetpulse.job_settings "
        "--write docs/configuration.md"
    )
    for model in JOBS:
        for name in fields_of(model):
            assert f"| `{flag_of(name)}`" in committed and f"`{env_name(name)}`" in committed


def test_an_empty_variable_leaves_an_optional_setting_to_the_cluster() -> None:
    settings = TrackingSettings.from_argv([], environ={"FLEETPULSE_PARALLELISM": ""})
    assert settings.parallelism is None
    # a setting with a default of its own still refuses an empty value
    with pytest.raises(SystemExit):
        TrackingSettings.from_argv([], environ={"FLEETPULSE_BUNDLE_SHARDS": ""})
