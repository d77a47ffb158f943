"""Job settings: flags over FLEETPULSE_* environment over defaults; bad values name the field."""

from __future__ import annotations

import pytest

from flink_jobs.runtime.settings import parse_settings

pytestmark = pytest.mark.unit


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETPULSE_PARALLELISM", "3")
    monkeypatch.setenv("FLEETPULSE_REDIS_URL", "redis://example:1/0")
    settings = parse_settings(["--parallelism", "2"], "g")
    assert settings.parallelism == 2
    assert settings.redis_url == "redis://example:1/0"
    assert settings.group_id == "g"


def test_a_bad_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLEETPULSE_REDIS_FLUSH_MS", "fast")
    with pytest.raises(SystemExit) as exit_info:
        parse_settings([], "g")
    assert exit_info.value.code == 2
    assert (
        "FLEETPULSE_REDIS_FLUSH_MS (--redis-flush-ms): 'fast' is not a valid int"
        in capsys.readouterr().err
    )


def test_a_bad_flag_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--parallelism", "0"], "g")
    assert "--parallelism must be at least 1" in capsys.readouterr().err


def test_a_job_default_yields_to_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_settings([], "g").buffer_timeout_ms == 100  # Flink's own default
    assert parse_settings([], "g", buffer_timeout_ms=10).buffer_timeout_ms == 10
    monkeypatch.setenv("FLEETPULSE_BUFFER_TIMEOUT_MS", "20")
    assert parse_settings([], "g", buffer_timeout_ms=10).buffer_timeout_ms == 20
    assert (
        parse_settings(["--buffer-timeout-ms", "0"], "g", buffer_timeout_ms=10).buffer_timeout_ms
        == 0
    )


@pytest.mark.parametrize("flag", ["--buffer-timeout-ms", "--detection-slack-ms"])
def test_a_negative_duration_is_refused(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings([flag, "-1"], "g")
    assert f"{flag} must be 0 or more" in capsys.readouterr().err
    assert parse_settings([flag, "0"], "g") is not None


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
    with pytest.raises(SystemExit):
        parse_settings([flag, bad], "g")
    assert message in capsys.readouterr().err
    assert parse_settings([flag, "1"], "g") is not None


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
    with pytest.raises(SystemExit):
        parse_settings(["--cpus", value], "g")
    assert message in capsys.readouterr().err


def test_no_cpus_means_no_pinning() -> None:
    assert parse_settings([], "g").cpus == ""
    assert parse_settings(["--cpus", "0"], "g").cpus == "0"


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
    with pytest.raises(SystemExit):
        parse_settings(flags, "g")
    assert message in capsys.readouterr().err


def test_state_bounds_default_per_job() -> None:
    assert parse_settings([], "g").max_record_age_s == 24 * 3600  # pings
    assert (
        parse_settings([], "g", max_record_age_s=7 * 24 * 3600).max_record_age_s == 7 * 24 * 3600
    )  # the delay job's default for scans
    assert parse_settings([], "g").truck_state_ttl_s == 7 * 24 * 3600


def test_the_delay_jobs_state_bounds_are_flags_and_bad_ones_name_the_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flink_jobs.delay.job import parse_options

    opts, rest = parse_options(
        [
            "--expire-after-promise-s",
            "86400",
            "--max-scans-per-shipment",
            "50",
            "--parallelism",
            "2",
        ]
    )
    assert (opts.cfg.expire_after_promise_s, opts.cfg.max_scans_per_shipment) == (86400, 50)
    assert rest == ["--parallelism", "2"]
    with pytest.raises(SystemExit):
        parse_options(["--max-scans-per-shipment", "0"])
    assert "max_scans_per_shipment" in capsys.readouterr().err
