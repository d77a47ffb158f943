"""The jobs' operators keep their ids from one version to the next.

Flink maps the state of a checkpoint or savepoint to operators by id; an operator without an
explicit uid gets a hash of its place in the graph, so adding or removing an operator anywhere
upstream or in its chain gives it a new one and strands its state (the job then refuses to
restore). Both jobs give every operator that can hold state a fixed uid: `.uid()` on the
DataStream operators, `table.exec.uid.generation: ALWAYS` for the planner's (the Kafka sources
with their offsets, MATCH_RECOGNIZE, the sinks). The graphs are built, not run.

Renaming one of the uids pinned here makes a new version unable to restore an older one's
checkpoints: change this list only together with an upgrade note (README, "Upgrades").
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.flink

# Operators PyFlink and the planner add around ours, stateless by construction: the Python
# key selectors, the side-output readers and the table-to-stream converter.
STATELESS_KINDS = {"Map", "_stream_key_by_map_operator", "SinkConversion"}

TRACKING_IDS = {
    "1_source",
    "2_calc",
    "bundle-by-shard",
    "truck-state",
    "census-rows",
    "alerts-rows",
    "geofence-rows",
    "dlq-rows",
    "dlq-sink",
    "region-census",
    "region-census-end",
    "4_source",
    "5_sink",
    "Sink Committer: 5_sink",
    "6_source",
    "7_sink",
    "Sink Committer: 7_sink",
}
DELAY_STATEFUL = {
    "1_source",
    "parse-scans",
    "parse-pings",
    "truck-feed",
    "shipment-state",
    "redis-delays",
    "attempts-matches",
    "dlq-sink",
}

# Each job is built in a JVM of its own, as `python -m flink_jobs...` and `flink run` build it:
# the planner numbers its nodes with a counter of the JVM, so "1_source" is the first source
# of the first plan a client JVM translates (a second job built in the same JVM gets "15_source").
BUILD = """
import json, sys
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment
from flink_jobs.delay import job as delay_job
from flink_jobs.tracking import job as tracking_job
from flink_jobs.delay.settings import DelaySettings
from flink_jobs.tracking.settings import TrackingSettings
which, flags = sys.argv[1], ["--bootstrap", "127.0.0.1:9", *sys.argv[2:]]
if which == "tracking-upgraded":
    # a next version with one more operator, between the source and the truck function
    to_stream = StreamTableEnvironment.to_append_stream
    StreamTableEnvironment.to_append_stream = lambda self, table, type_info: to_stream(
        self, table, type_info).filter(lambda row: True).name("added-filter")
if which.startswith("tracking"):
    env = tracking_job.job(TrackingSettings.from_argv(flags))
else:
    env = delay_job.job(DelaySettings.from_argv(flags))
graph = env._generate_stream_graph(False)
# the operator ids a checkpoint's state is filed under (Flink's, as the job graph gets them)
ids = get_gateway().jvm.org.apache.flink.streaming.api.graph.StreamGraphHasherV2() \\
    .traverseStreamGraphAndGenerateHashes(graph)
print("NODES " + json.dumps([[str(n.getOperatorName()), n.getTransformationUID(),
                              bytes(ids.get(n.getId())).hex()]
                             for n in graph.getStreamNodes().toArray()]))
"""


@functools.cache
def graph(which: str, *flags: str) -> tuple[tuple[str, str | None, str], ...]:
    """(operator name, uid, operator id) of each node of the stream graph the job would
    submit."""
    done = subprocess.run(
        [sys.executable, "-c", BUILD, which, *flags], capture_output=True, text=True, timeout=300
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("NODES ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return tuple((name, uid, op_id) for name, uid, op_id in json.loads(lines[-1][6:]))


def graph_nodes(which: str, *flags: str) -> list[tuple[str, str | None]]:
    return [(name, uid) for name, uid, _ in graph(which, *flags)]


def kind(operator_name: str) -> str:
    """ "Calc[2]" -> "Calc"; "Source: gps_source[1]" -> "Source: gps_source"."""
    return operator_name.split("[", 1)[0]


def without_uid(nodes: list[tuple[str, str | None]]) -> list[str]:
    """The operators without a fixed id that may hold state (PyFlink names Python operators
    chained into one "first, second")."""
    return [
        name
        for name, uid in nodes
        if uid is None and not all(kind(part) in STATELESS_KINDS for part in name.split(", "))
    ]


def test_the_tracking_job_keeps_every_operator_id() -> None:
    nodes = graph_nodes("tracking")
    assert without_uid(nodes) == []
    assert {uid for _, uid in nodes if uid is not None} == TRACKING_IDS


def test_the_delay_job_keeps_its_stateful_operator_ids() -> None:
    nodes = graph_nodes("delay")
    assert without_uid(nodes) == []
    uids = {uid for _, uid in nodes}
    assert uids >= DELAY_STATEFUL
    # MATCH_RECOGNIZE keeps its pattern state under a planner id too
    assert any(uid is not None and uid.endswith("_match") for uid in uids), sorted(
        str(u) for u in uids
    )


def test_an_added_operator_leaves_the_ids_of_the_others_alone() -> None:
    """What the uids are for: a next version with one more operator (here a filter between
    the source and the truck function) files every operator's state under the same id, so it
    restores this version's checkpoints. Without the uids, this very change moved the ids of
    the truck function, the census and the sinks (measured when they were added)."""
    before = {uid: op_id for _, uid, op_id in graph("tracking") if uid is not None}
    after = {uid: op_id for name, uid, op_id in graph("tracking-upgraded") if uid is not None}
    assert "added-filter" in [name for name, _ in graph_nodes("tracking-upgraded")]
    assert set(before) == TRACKING_IDS
    assert {uid: after.get(uid) for uid in before} == before
