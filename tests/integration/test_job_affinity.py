"""`--cpus` pins an embedded job: the job's process and the MiniCluster JVM it starts run only
on the CPUs given (the JVM inherits them), so the operators' interpreter-lock handoffs stay
on those cores."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

# Creates the job's environment (which starts the MiniCluster's JVM), then prints the CPUs of
# every JVM below this process.
PROBE = textwrap.dedent("""
    import os, sys
    from flink_jobs.runtime.environment import create_environment
    from flink_jobs.runtime.settings import JobSettings

    env, _ = create_environment(JobSettings.from_argv(sys.argv[1:]), "affinity-test")
    env.from_collection([1]).map(lambda x: x)  # the JVM is up and answering

    def descendants(pid):
        found = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in map(int, f.read().split()):
                    found += [child, *descendants(child)]
        return found

    for pid in descendants(os.getpid()):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"java" in f.read().split(b"\\0")[0]:
                print("jvm", ",".join(map(str, sorted(os.sched_getaffinity(pid)))))
    print("self", ",".join(map(str, sorted(os.sched_getaffinity(0)))))
""")


def probe(*flags: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *flags], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        role, _, cpus = line.partition(" ")
        seen.setdefault(role, []).append(cpus)
    return seen


def test_cpus_pins_the_job_and_its_minicluster() -> None:
    usable = sorted(os.sched_getaffinity(0))
    cpu = str(usable[-1])
    pinned = probe("--cpus", cpu)
    assert pinned["self"] == [cpu]
    assert pinned["jvm"] == [cpu]


def test_without_cpus_the_job_runs_anywhere() -> None:
    usable = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    free = probe()
    assert free["self"] == [usable]
    assert free["jvm"] == [usable]
