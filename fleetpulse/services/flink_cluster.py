"""A standalone Flink session cluster from the scripts inside the apache-flink wheel.

Used to check that the jobs really run under `flink run -py` (and by operators who want a
local session cluster): one JobManager and ``taskmanagers`` TaskManager processes on loopback,
configured for thread-mode Python with this interpreter, all state and logs in ``work_dir``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fleetpulse import PlatformError
from fleetpulse.paths import PROJECT_ROOT
from fleetpulse.services.flink import jobs_overview, pyflink_home
from fleetpulse.waiting import wait_until
from flink_jobs.runtime.affinity import one_cpu_each


@dataclass
class StandaloneCluster:
    work_dir: Path
    rest_port: int
    rpc_port: int
    taskmanagers: int = 1
    slots_per_taskmanager: int = 2
    # Each TaskManager on a CPU of its own (round robin): its operator threads then hand the
    # interpreter lock over on one core (flink_jobs.runtime.affinity). The JobManager is not pinned.
    pin_taskmanagers: bool = False
    # The interpreter and the code the TaskManagers' Python runs: this one and this checkout,
    # unless a benchmark runs another revision (bench.compare --cluster).
    python: str = sys.executable
    project_root: Path = PROJECT_ROOT
    # More of config.yaml: the cluster's own defaults for its jobs (parallelism.default,
    # execution.checkpointing.*, restart-strategy.*, s3.*), which a submitted job keeps.
    extra_config: dict[str, object] = field(default_factory=dict)
    # The embedded interpreters' import path (python.pythonpath and the daemons' PYTHONPATH),
    # in place of ``project_root`` plus this interpreter's site-packages: a test of an
    # installed wheel runs none of this checkout's code.
    pythonpath: list[str] | None = None
    # Plugin folders (each plugin in a sub-folder) the daemons load besides the wheel's own
    # metric reporters: the S3 filesystem (flink_jobs.runtime.jars.plugins_dir) for
    # checkpoints on s3://, configured by ``s3.*`` keys in ``extra_config``.
    plugins_dirs: list[Path] = field(default_factory=list)

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def conf_dir(self) -> Path:
        return self.work_dir / "conf"

    def _config(self) -> dict[str, object]:
        shipped = yaml.safe_load((pyflink_home() / "conf" / "config.yaml").read_text())
        java_opts = shipped["env"]["java"]["opts"]["all"]
        return {
            "env.java.opts.all": java_opts,
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": self.rpc_port,
            "jobmanager.bind-host": "127.0.0.1",
            "jobmanager.memory.process.size": "1024m",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
            "taskmanager.numberOfTaskSlots": self.slots_per_taskmanager,
            "taskmanager.memory.process.size": "1728m",
            "rest.port": self.rest_port,
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "parallelism.default": 1,
            "python.execution-mode": "thread",
            "python.executable": self.python,
            "python.pythonpath": self._pythonpath(),
            "env.log.dir": str(self.work_dir / "log"),
            "env.pid.dir": str(self.work_dir / "pid"),
            **self.extra_config,
        }

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["FLINK_HOME"] = str(pyflink_home())
        env["FLINK_CONF_DIR"] = str(self.conf_dir)
        env["FLINK_LOG_DIR"] = str(self.work_dir / "log")
        env["FLINK_PID_DIR"] = str(self.work_dir / "pid")
        env["FLINK_LIB_DIR"] = str(self.work_dir / "lib")
        if self.plugins_dirs:
            env["FLINK_PLUGINS_DIR"] = str(self.plugins_dir)
        # The embedded (thread-mode) interpreter reads PYTHONPATH, not the venv's pyvenv.cfg.
        env["PYTHONPATH"] = self._pythonpath()
        return env

    @property
    def plugins_dir(self) -> Path:
        """The daemons' ``FLINK_PLUGINS_DIR`` when ``plugins_dirs`` add to the wheel's."""
        return self.work_dir / "plugins"

    def _pythonpath(self) -> str:
        if self.pythonpath is not None:
            return os.pathsep.join(self.pythonpath)
        site_packages = [p for p in sys.path if p.endswith("site-packages")]
        return os.pathsep.join([str(self.project_root), *site_packages])

    def _link_plugins(self) -> None:
        """The daemons' plugins/: one link per plugin folder, the wheel's and
        ``plugins_dirs``' (Flink gives each folder a class loader of its own)."""
        self.plugins_dir.mkdir(parents=True, exist_ok=True)
        for root in (pyflink_home() / "plugins", *self.plugins_dirs):
            if not root.is_dir():
                raise PlatformError(f"plugins_dirs: {root} is not a directory")
            for plugin in root.iterdir():
                link = self.plugins_dir / plugin.name
                if plugin.is_dir() and not link.exists():
                    link.symlink_to(plugin.resolve())

    def _link_lib(self) -> None:
        """The cluster's lib/: the wheel's jars plus flink-python (the JobManager needs the
        Python operators' classes, and one copy loaded by the parent class loader lets several
        thread-mode jobs share a TaskManager) and the Prometheus reporter."""
        from flink_jobs.runtime.jars import prometheus_reporter_jar

        lib = self.work_dir / "lib"
        jars = [
            *(pyflink_home() / "lib").glob("*.jar"),
            *(pyflink_home() / "opt").glob("flink-python-*.jar"),
        ]
        reporter = prometheus_reporter_jar()
        if reporter is not None:
            jars.append(reporter)
        for jar in jars:
            link = lib / jar.name
            if not link.exists():
                link.symlink_to(jar)

    def _script(self, name: str, *args: str, cpus: frozenset[int] | None = None) -> None:
        """Run one of Flink's scripts; with ``cpus`` the daemon it starts inherits them."""
        script = pyflink_home() / "bin" / name
        pin = functools.partial(os.sched_setaffinity, 0, cpus) if cpus else None
        proc = subprocess.run(
            ["bash", str(script), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=pin,
        )
        if proc.returncode != 0:
            raise PlatformError(f"{name} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")

    def start(self, timeout_s: float = 120) -> None:
        for sub in ("conf", "log", "pid", "lib"):
            (self.work_dir / sub).mkdir(parents=True, exist_ok=True)
        self._link_lib()
        if self.plugins_dirs:
            self._link_plugins()
        for f in (pyflink_home() / "conf").iterdir():
            if f.name != "config.yaml":
                shutil.copy(f, self.conf_dir / f.name)
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(self._config()))
        self._script("jobmanager.sh", "start")
        placement = (
            one_cpu_each(self.taskmanagers) if self.pin_taskmanagers else [None] * self.taskmanagers
        )
        for cpus in placement:
            self._script("taskmanager.sh", "start", cpus=cpus)

        def ready() -> bool:
            from fleetpulse.services.flink import rest_get

            overview = rest_get(self.rest_url, "/overview")
            return int(overview.get("taskmanagers", 0)) >= self.taskmanagers

        wait_until(ready, timeout_s, f"Flink standalone cluster on {self.rest_url}", interval_s=0.5)

    def pids(self) -> dict[str, int]:
        """The cluster's processes by role (``jobmanager``, ``taskmanager-1``, ...), from the
        pid files Flink's scripts write."""
        found: dict[str, int] = {}
        for pid_file in sorted((self.work_dir / "pid").glob("*.pid")):
            role = "taskmanager" if "taskexecutor" in pid_file.name else "jobmanager"
            pids = [int(x) for x in pid_file.read_text().split() if x.isdigit()]
            for n, pid in enumerate(pids, start=1):
                found[f"{role}-{n}" if role == "taskmanager" else role] = pid
        return found

    def running_jobs(self) -> list[dict[str, object]]:
        return [j for j in jobs_overview(self.rest_url) if j.get("state") == "RUNNING"]

    def stop(self) -> None:
        for script in ("taskmanager.sh", "jobmanager.sh"):
            with contextlib.suppress(PlatformError):
                self._script(script, "stop-all")
