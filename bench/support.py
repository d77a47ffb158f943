"""Shared plumbing of the benchmark: a private Kafka and Redis, child processes with their
memory sampled, machine facts and the progress bar."""

from __future__ import annotations

import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetpulse.paths import PROJECT_ROOT
from fleetpulse.services.flink import flink_env
from fleetpulse.services.kafka import KafkaBroker, SaslSslListener, create_topics
from fleetpulse.services.process import ManagedProcess, kill_group
from fleetpulse.services.redis_server import RedisServer
from fleetpulse.waiting import free_port
from udfs.contract import TopicNames, TopicSpec, contract_topics

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class BenchError(Exception):
    """A measurement could not be taken; the section reports it as not measured."""


# -- services --------------------------------------------------------------------------------


@dataclass
class Stack:
    """Kafka and Redis on free loopback ports, with their files in a temporary directory."""

    root: Path
    kafka: KafkaBroker
    redis_server: RedisServer
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    topics: TopicNames = TopicNames()

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    def redis(self) -> Any:
        """A client of the stack's Redis (a cluster's, when ``redis_server`` is a node of
        one: :mod:`bench.secured_paths`)."""
        from flink_jobs.runtime.redis_client import connect

        return connect(self.redis_url, socket_timeout=120)

    def flush_redis(self) -> None:
        import redis

        r = self.redis()
        if isinstance(r, redis.RedisCluster):
            r.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
        else:
            r.flushall()
        r.close()

    def create_topic(self, name: str, partitions: int) -> None:
        create_topics(self.bootstrap, [TopicSpec(name, partitions, 24 * 3_600_000)])

    def service_pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items() if p.alive()}


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C (``SystemExit``), so ``finally`` blocks stop the Kafka,
    Redis, jobs and load generators a benchmark started; by default the signal ends the
    process at once and leaves all of them running."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@contextmanager
def running_stack(keep: bool = False, secure: SaslSslListener | None = None) -> Iterator[Stack]:
    """``secure``: the broker also has that SASL_SSL listener (beside its plaintext one)."""
    tmp = Path(tempfile.mkdtemp(prefix="fleetpulse-bench-"))
    kafka = KafkaBroker(
        tmp / "kafka", port=free_port(), controller_port=free_port(), heap_mb=1024, secure=secure
    )
    redis_server = RedisServer(tmp / "redis", port=free_port(), persist=False)
    stack = Stack(tmp, kafka, redis_server)
    try:
        stack.procs["kafka"] = kafka.start(tmp / "kafka.log")
        stack.procs["redis"] = redis_server.start(tmp / "redis.log")
        r = stack.redis()
        r.config_set("maxmemory", "0")
        r.close()
        create_topics(stack.bootstrap, contract_topics(stack.topics))
        yield stack
    finally:
        for p in reversed(list(stack.procs.values())):
            p.stop(timeout_s=20)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


# -- processes -------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def truck_walk(
    rng: random.Random, trucks: int, box: tuple[float, float, float, float], step_deg: float = 0.05
) -> Iterator[tuple[str, float, float]]:
    """Endless moves ``(truck_id, lat, lng)`` of ``trucks`` trucks (``B00000``, ...) that
    random-walk inside ``box`` (min_lng, min_lat, max_lng, max_lat): each move picks a truck
    and steps it up to ``step_deg`` on each axis. The gateway benchmark's producer and
    ``bench.gateway_micro`` both use it, so they route the same kind of traffic."""
    pos = {
        f"B{i:05d}": [rng.uniform(box[1], box[3]), rng.uniform(box[0], box[2])]
        for i in range(trucks)
    }
    ids = list(pos)
    while True:
        tid = ids[rng.randrange(trucks)]
        p = pos[tid]
        p[0] = min(box[3], max(box[1], p[0] + rng.uniform(-step_deg, step_deg)))
        p[1] = min(box[2], max(box[0], p[1] + rng.uniform(-step_deg, step_deg)))
        yield tid, p[0], p[1]


def rss_kib(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class MemorySampler:
    """Samples the RSS of named process trees every ``interval_s`` on a thread; keeps each
    tree's peak (sum over the tree at one moment) and the peak of their total."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.roots: dict[str, int] = {}
        self.peak_kib: dict[str, int] = {}
        self.total_peak_kib = 0
        self._cpu: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self.roots[name] = pid

    def sample(self) -> None:
        with self._lock:
            roots = dict(self.roots)
        total = 0
        for name, pid in roots.items():
            tree = process_tree(pid)
            for p in tree:
                cpu = cpu_seconds(p)
                if cpu:
                    self._cpu[(name, p)] = cpu
            kib = sum(rss_kib(p) for p in tree)
            total += kib
            if kib > self.peak_kib.get(name, 0):
                self.peak_kib[name] = kib
        self.total_peak_kib = max(self.total_peak_kib, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()

    def cpu_s(self, name: str) -> float:
        """CPU seconds of the tree (each process as last seen alive, so a process that lived
        less than one interval is missed)."""
        return round(sum(v for (n, _), v in self._cpu.items() if n == name), 1)

    def peak_mib(self, name: str) -> float:
        return round(self.peak_kib.get(name, 0) / 1024, 1)


@dataclass
class Child:
    """A child process (own process group) optionally wrapped in ``/usr/bin/time -v``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    time_path: Path | None

    @property
    def pid(self) -> int:
        """The measured process (the child of ``time`` when wrapped)."""
        if self.time_path is None:
            return self.popen.pid
        tree = process_tree(self.popen.pid)
        return tree[1] if len(tree) > 1 else self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def time_v(self) -> dict[str, float]:
        from bench.report import parse_time_v

        if self.time_path is None or not self.time_path.exists():
            return {}
        return parse_time_v(self.time_path.read_text(errors="replace"))

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the measured process (so ``time`` still reports), then the whole group."""
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                kill_group(self.popen.pid, signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=5)
        kill_group(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


def start_child(
    name: str,
    argv: list[str],
    workdir: Path,
    timed: bool = False,
    env: dict[str, str] | None = None,
) -> Child:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    time_path = workdir / f"{name}.time" if timed and Path("/usr/bin/time").exists() else None
    full = (["/usr/bin/time", "-v", "-o", str(time_path)] if time_path else []) + argv
    child_env = flink_env()
    child_env["PYTHONUNBUFFERED"] = "1"
    if env:
        child_env.update(env)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            full,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
    return Child(name, popen, log_path, time_path)


def python_argv(module: str, *args: str, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", module, *args]


# -- machine ---------------------------------------------------------------------------------


def _cmd_version(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "?"


def machine_info(quix_python: str | None = None) -> dict[str, Any]:
    cpu = "?"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    try:
        from importlib.metadata import version

        flink = version("apache-flink")
    except Exception:  # noqa: BLE001
        flink = "?"
    from fleetpulse.paths import jvm_dir

    kafka = "?"
    jars = sorted((jvm_dir() / "kafka").glob("kafka_2.13-*.jar"))
    if jars:
        kafka = jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar")
    quix = None
    if quix_python:
        q = _cmd_version(
            [quix_python, "-c", "import quixstreams; print(quixstreams.__version__)"],
            r"(\d+\.\d+\.\d+)",
        )
        quix = None if q == "?" else q
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "java": "Java " + _cmd_version(["java", "-version"], r'version "([^"]+)"'),
        "flink": flink,
        "kafka": kafka,
        "redis": _cmd_version(["redis-server", "--version"], r"v=(\S+)"),
        "quixstreams": quix,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# -- progress --------------------------------------------------------------------------------


class Bar:
    """A progress bar: tqdm when installed, else a self-rewriting line on stderr."""

    def __init__(self, total: float, desc: str, unit: str = "it") -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0.0
        self._tqdm: Any = None
        self._last_draw = 0.0
        try:
            from tqdm import tqdm

            self._tqdm = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                unit_scale=True,
                dynamic_ncols=True,
                leave=False,
                file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 15.0,
            )
        except ImportError:
            pass

    def update_to(self, n: float, postfix: str = "") -> None:
        n = min(n, self.total) if self.total else n
        if self._tqdm is not None:
            self._tqdm.update(n - self._tqdm.n)
            if postfix:
                self._tqdm.set_postfix_str(postfix, refresh=False)
        elif time.monotonic() - self._last_draw > 0.5:
            self._last_draw = time.monotonic()
            pct = 100 * n / self.total if self.total else 0
            sys.stderr.write(
                f"\r{self.desc}: {n:,.0f}/{self.total:,.0f} {self.unit} ({pct:4.1f}%) {postfix}   "
            )
            sys.stderr.flush()
        self.n = n

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            sys.stderr.write("\n")


def log(msg: str) -> None:
    """A line above the progress bar."""
    try:
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)
    except ImportError:
        sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def wait_for(pred: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as exc:  # noqa: BLE001 - polling
            last = exc
        time.sleep(interval_s)
    raise BenchError(
        f"timed out after {timeout_s:.0f}s waiting for {what}"
        + (f" (last error: {last!r})" if last else "")
    )
