"""`fleetpulse bench --cluster-checkpoints`: the job's checkpoint flag, the cluster's S3
configuration and plugin folders, the option's validation; the S3 server started and stopped."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from bench.checkpoint_store import (
    BUCKET,
    checkpoint_stats,
    describe,
    local_store,
    open_store,
    s3_store,
)
from bench.cli import bench
from bench.sections.throughput import cluster_run_name, tracking_argv
from bench.support import BenchError
from fleetpulse.paths import PROJECT_ROOT
from fleetpulse.services.flink import pyflink_home
from fleetpulse.services.flink_cluster import StandaloneCluster
from fleetpulse.services.s3_server import S3Server
from udfs.contract import TopicNames

S3_CONFIG = S3Server(port=9).flink_config()


def fake_ctx(tmp_path: Path) -> Any:
    topics = TopicNames("gps", "scans", "alerts", "geofence", "dlq")
    stack = SimpleNamespace(topics=topics, bootstrap="127.0.0.1:1", redis_url="redis://x/0")
    return SimpleNamespace(stack=stack, workdir=tmp_path)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.unit
def test_the_job_checkpoints_to_a_folder_of_its_own_in_the_store(tmp_path: Path) -> None:
    ctx, ds = fake_ctx(tmp_path), SimpleNamespace(topic="bench.gps")
    store = s3_store(S3_CONFIG, "bkt", tmp_path / "plugins")
    first, second = tracking_argv(ctx, ds, 2, store=store), tracking_argv(ctx, ds, 2, store=store)
    s3_dir = flag(first, "--checkpoint-dir")
    assert s3_dir.startswith("s3://bkt/checkpoints/bench-tracking-")
    assert flag(second, "--checkpoint-dir") != s3_dir  # a fresh folder per run, like its group
    assert s3_dir.endswith(flag(first, "--group-id"))
    # without a store (the embedded runs): local disk under the work directory, as before
    local = Path(flag(tracking_argv(ctx, ds, 1), "--checkpoint-dir"))
    assert local.parent == tmp_path / "checkpoints"
    assert local_store(tmp_path).location("g") == f"{tmp_path}/g"


@pytest.mark.unit
def test_the_report_says_where_the_checkpoints_went(tmp_path: Path) -> None:
    s3 = s3_store(S3_CONFIG, "bkt", tmp_path)
    assert cluster_run_name(2, False, s3) == "fleetpulse p=2, 2 TaskManagers, checkpoints on S3"
    assert cluster_run_name(2, True, local_store(tmp_path)) == (
        "fleetpulse p=2, 2 TaskManagers, one CPU each"
    )
    stats = {"completed": 3, "last_path": "s3://bkt/checkpoints/g/abc/chk-3"}
    assert describe(s3, stats) == (
        "checkpoints on S3 (local moto server): 3 completed, last s3://bkt/checkpoints/g/abc/chk-3"
    )
    assert describe(s3, None) == "checkpoints on S3 (local moto server) (s3://bkt/checkpoints)"


@pytest.mark.unit
def test_a_cluster_with_the_s3_store_loads_its_plugin_and_configuration(tmp_path: Path) -> None:
    plugins = tmp_path / "jvm-plugins"
    (plugins / "s3-fs-presto").mkdir(parents=True)
    (plugins / "s3-fs-presto" / "flink-s3-fs-presto.jar").write_bytes(b"")
    store = s3_store(S3_CONFIG, "bkt", plugins)
    cluster = StandaloneCluster(
        tmp_path / "cluster",
        rest_port=1,
        rpc_port=2,
        extra_config=dict(store.cluster_config),
        plugins_dirs=list(store.plugins_dirs),
    )
    config = cluster._config()
    assert config["s3.endpoint"] == "http://127.0.0.1:9"
    assert config["s3.path.style.access"] is True
    assert config["s3.access-key"] and config["s3.secret-key"]
    assert cluster.env()["FLINK_PLUGINS_DIR"] == str(tmp_path / "cluster" / "plugins")
    cluster._link_plugins()
    linked = {p.name: p.resolve() for p in cluster.plugins_dir.iterdir()}
    assert linked["s3-fs-presto"] == (plugins / "s3-fs-presto").resolve()
    # the wheel's own plugins (metric reporters) stay available
    wheel = {p.name for p in (pyflink_home() / "plugins").iterdir() if p.is_dir()}
    assert wheel and wheel <= set(linked)
    # no plugins_dirs: the daemons keep the launcher's default
    plain = StandaloneCluster(tmp_path / "plain", rest_port=1, rpc_port=2)
    assert plain.env().get("FLINK_PLUGINS_DIR") == os.environ.get("FLINK_PLUGINS_DIR")


@pytest.mark.unit
def test_a_given_pythonpath_replaces_the_checkouts(tmp_path: Path) -> None:
    default = StandaloneCluster(tmp_path / "a", rest_port=1, rpc_port=2)
    assert str(default._config()["python.pythonpath"]).split(os.pathsep)[0] == str(PROJECT_ROOT)
    given = ["/opt/venv/lib/python3.11/site-packages", "/opt/extra"]
    cluster = StandaloneCluster(tmp_path / "b", rest_port=1, rpc_port=2, pythonpath=given)
    assert cluster._config()["python.pythonpath"] == os.pathsep.join(given)
    assert cluster.env()["PYTHONPATH"] == os.pathsep.join(given)
    assert str(PROJECT_ROOT) not in cluster.env()["PYTHONPATH"].split(os.pathsep)


@pytest.mark.unit
def test_an_unknown_store_is_refused_naming_the_option() -> None:
    result = CliRunner().invoke(bench, ["--cluster-checkpoints", "hdfs"])
    assert result.exit_code == 2
    assert "--cluster-checkpoints" in result.output and "'hdfs'" in result.output


@pytest.mark.unit
def test_s3_without_the_plugin_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETPULSE_JVM_DIR", str(tmp_path / "empty-jvm"))
    refused = pytest.raises(BenchError, match="--cluster-checkpoints s3: no Flink S3 filesystem")
    with refused, open_store("s3", tmp_path):
        pass


@pytest.mark.unit
def test_checkpoint_stats_without_a_cluster_leave_the_row_standing() -> None:
    stats = checkpoint_stats("http://127.0.0.1:9")
    assert stats["completed"] is None and "error" in stats


@pytest.mark.integration
def test_the_s3_store_has_its_bucket_while_open_and_its_server_stops_after(tmp_path: Path) -> None:
    """moto's real server: the bucket the runs write to exists (an object put there is
    listed), and nothing listens once the store is closed."""
    from flink_jobs.runtime.jars import plugins_dir

    if plugins_dir() is None:
        pytest.skip("no Flink S3 plugin: run ./dev.sh setup")
    with open_store("s3", tmp_path) as (store, server):
        assert store.kind == "s3" and store.root == f"s3://{BUCKET}/checkpoints"
        assert store.cluster_config["s3.endpoint"] == server.endpoint
        put = urllib.request.Request(
            f"{server.endpoint}/{BUCKET}/checkpoints/g/chk-1/_metadata", data=b"x", method="PUT"
        )
        urllib.request.urlopen(put, timeout=10).close()
        assert server.keys(BUCKET, "checkpoints/") == ["checkpoints/g/chk-1/_metadata"]
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.endpoint, timeout=2)
