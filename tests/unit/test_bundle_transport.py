"""The Python side of the bundle transport (:mod:`flink_jobs.tracking.bundling`) and the on-demand
build
of the JVM operator behind it (:mod:`flink_jobs.runtime.operators_jar`)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from flink_jobs import JobError
from flink_jobs.tracking.bundling import decode_bundle, encode_bundle

pytestmark = pytest.mark.unit


def test_a_bundle_decodes_to_its_records_in_order_with_nulls_and_any_bytes() -> None:
    records = [
        (0, 0, b"T1", b'{"truck_id":"T1"}'),
        (3, 2**40, None, None),
        (1, 7, b"", b""),
        (2, 9, bytes(range(256)), bytes(range(256))),
    ]
    assert list(decode_bundle(encode_bundle(records))) == records
    assert list(decode_bundle(b"")) == []


def test_the_encoding_is_the_jvm_bundlers_big_endian_layout() -> None:
    # [partition int32][offset int64][key length int32][key][value length int32][value], as
    # ShardBundler.java writes it
    assert encode_bundle([(1, 2, b"k", b"ab")]) == (
        b"\x00\x00\x00\x01"
        + b"\x00" * 7
        + b"\x02"
        + b"\x00\x00\x00\x01"
        + b"k"
        + b"\x00\x00\x00\x02"
        + b"ab"
    )
    assert encode_bundle([(1, 2, None, None)])[-8:] == b"\xff\xff\xff\xff" * 2
    assert encode_bundle([(1, 2, b"ab")]) == encode_bundle([(1, 2, None, b"ab")])


@pytest.mark.parametrize("cut", [3, 16, 18, 20, 24])
def test_a_truncated_bundle_is_an_error_not_a_short_read(cut: int) -> None:
    bundle = encode_bundle([(0, 0, b"kk", b"x" * 10)])
    with pytest.raises(ValueError, match="truncated"):
        list(decode_bundle(bundle[:cut]))


def test_the_operators_jar_is_built_once_per_version_of_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetpulse.paths import jvm_dir
    from flink_jobs.runtime import operators_jar as build

    (tmp_path / "flink").symlink_to(jvm_dir() / "flink")  # the connector it compiles against
    monkeypatch.setenv("FLEETPULSE_JVM_DIR", str(tmp_path))
    jar = build.operators_jar()
    assert jar.parent == tmp_path / "operators"
    with zipfile.ZipFile(jar) as z:
        assert "io/fleetpulse/flink/ShardBundler.class" in z.namelist()
        assert "io/fleetpulse/flink/DeadLetterSink.class" in z.namelist()
    mtime = jar.stat().st_mtime_ns
    assert build.operators_jar() == jar and jar.stat().st_mtime_ns == mtime  # cached

    src = tmp_path / "src" / "io" / "x"
    src.mkdir(parents=True)
    (src / "A.java").write_text("package io.x; public class A {}\n")
    monkeypatch.setattr(build, "SOURCE_DIR", tmp_path / "src")
    first = build.sources_digest(build._sources())
    (src / "A.java").write_text("package io.x; public class A { int a; }\n")
    assert build.sources_digest(build._sources()) != first  # an edit builds a new jar
    assert build.operators_jar().name != jar.name


def test_a_compile_error_and_a_missing_jdk_say_what_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetpulse.paths import jvm_dir
    from flink_jobs.runtime import operators_jar as build

    (tmp_path / "flink").symlink_to(jvm_dir() / "flink")
    monkeypatch.setenv("FLEETPULSE_JVM_DIR", str(tmp_path))
    src = tmp_path / "src"
    src.mkdir()
    (src / "Broken.java").write_text("public class Broken { nope }\n")
    monkeypatch.setattr(build, "SOURCE_DIR", src)
    with pytest.raises(JobError, match="Broken.java"):
        build.operators_jar()
    assert not list((tmp_path / "operators").glob("*.jar"))

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(JobError, match="javac"):
        build.operators_jar()


def test_a_prebuilt_jar_named_by_the_environment_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flink_jobs.runtime import operators_jar as build

    jar = tmp_path / "ops.jar"
    jar.write_bytes(b"PK")
    monkeypatch.setenv("FLEETPULSE_OPERATORS_JAR", str(jar))
    monkeypatch.setattr(build, "_jdk_tool", lambda name: pytest.fail("built instead"))
    assert build.operators_jar() == jar
    monkeypatch.setenv("FLEETPULSE_OPERATORS_JAR", str(tmp_path / "missing.jar"))
    with pytest.raises(JobError, match="FLEETPULSE_OPERATORS_JAR=.*missing.jar"):
        build.operators_jar()


def test_an_installation_without_sources_uses_the_jar_it_carries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed wheel has no jvm/src: the packaged jar is used and nothing is compiled;
    with neither, the error says how to get one."""
    from flink_jobs.runtime import operators_jar as build

    monkeypatch.delenv("FLEETPULSE_OPERATORS_JAR", raising=False)
    monkeypatch.setattr(build, "SOURCE_DIR", tmp_path / "no-sources")
    monkeypatch.setattr(build, "_jdk_tool", lambda name: pytest.fail("compiled instead"))
    packaged = tmp_path / "lib" / "fleetpulse-operators.jar"
    monkeypatch.setattr(build, "PACKAGED_JAR", packaged)
    with pytest.raises(JobError, match="FLEETPULSE_BUILD_OPERATORS=require"):
        build.operators_jar()
    packaged.parent.mkdir()
    packaged.write_bytes(b"PK")
    assert build.operators_jar() == packaged
