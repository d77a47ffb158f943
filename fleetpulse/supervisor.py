"""`fleetpulse up`: start every component on loopback, watch them, stop them all together.

The supervisor is the parent of every process it starts (each in its own process group), writes
what runs where to ``<data>/run/up.json`` for `status` and `down`, restarts a component that
dies with backoff while the others keep running (:mod:`fleetpulse.restart_policy`), and on
Ctrl-C, SIGTERM or a component that keeps dying stops everything in reverse order, so no
process is left behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, MutableMapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from fleetpulse import PlatformError
from fleetpulse.config import UpSettings
from fleetpulse.exporter import prometheus
from fleetpulse.exporter.prometheus import find_prometheus
from fleetpulse.exporter.sources import normalize_url
from fleetpulse.restart_policy import RestartHistory, RestartPolicy
from fleetpulse.services import flink
from fleetpulse.services.kafka import KafkaBroker, create_topics
from fleetpulse.services.process import ManagedProcess, kill_group, pid_alive
from fleetpulse.services.redis_server import RedisServer, redis_password
from fleetpulse.waiting import check_port_free, port_open, wait_until
from flink_jobs.runtime.affinity import format_cpu_list, one_cpu_each
from udfs.contract import contract_topics
from udfs.kafka_properties import FILE_ENV, PROPERTY_ENV


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def check_java() -> None:
    java = shutil.which("java")
    if java is None:
        raise PlatformError(
            "Java 17 or newer is needed: no `java` on PATH (install openjdk-17-jdk-headless)"
        )
    out = subprocess.run(
        [java, "-XshowSettings:properties", "-version"], capture_output=True, text=True
    ).stderr
    for line in out.splitlines():
        if "java.specification.version" in line:
            version = line.split("=")[1].strip()
            if int(version.split(".")[0]) < 17:
                raise PlatformError(f"Java 17 or newer is needed, found Java {version} ({java})")
            return


# The consumer groups `up` gives its consumers (recorded for `status` and the exporter).
DISPATCHER_GROUP = "fleetpulse-alerting"


@dataclass(frozen=True)
class MonitoringSettings:
    """`up`'s operations view: the exporter (always, when its libraries are installed) and,
    with ``prometheus``, a Prometheus server scraping every component."""

    exporter_port: int = 9108
    prometheus: bool = False
    prometheus_port: int = 9090
    prometheus_bin: str = "prometheus"


@dataclass(frozen=True)
class JobInfo:
    """A Flink job as `status` and the exporter read it: its REST API and consumer group."""

    component: str
    flink_job: str
    rest_url: str
    group: str


def exporter_available() -> bool:
    return all(module_exists(m) for m in ("prometheus_client", "confluent_kafka", "redis"))


@dataclass
class Component:
    """A process `up` started, and how to start it again after it died (None: never)."""

    name: str
    process: ManagedProcess
    urls: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)
    restart: Callable[[], ManagedProcess] | None = None
    history: RestartHistory | None = None  # set by the supervisor from its policy
    restart_at: float | None = None  # monotonic time of a pending restart
    last_exit: int | None = None
    last_restart: float | None = None  # wall clock, for `status`

    def restart_record(self) -> dict[str, object]:
        """What `status` shows of this component's restarts (up.json)."""
        return {
            "count": self.history.restarts if self.history else 0,
            "last_restart": self.last_restart,
            "last_exit": self.last_exit,
            "restarting": self.restart_at is not None,
        }


@dataclass
class Supervisor:
    settings: UpSettings
    say: Callable[[str], None] = print
    components: list[Component] = field(default_factory=list)
    submitted_jobs: list[str] = field(default_factory=list)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    jobs: list[JobInfo] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)  # component -> consumer group
    ready: bool = False
    # None: FLEETPULSE_UP_MAX_RESTARTS / _RESTART_WINDOW, read by start_all (a bad value is a
    # PlatformError there, which `up` reports)
    restart_policy: RestartPolicy | None = None
    _stopping: bool = False
    _started: float = field(default_factory=time.time)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def policy(self) -> RestartPolicy:
        return self.restart_policy or RestartPolicy()

    def refuse_second_instance(self) -> None:
        state = read_state(self.settings.state_file)
        if state and pid_alive(int(state["supervisor_pid"])):
            raise PlatformError(
                f"fleetpulse is already running from {self.settings.data_dir} "
                f"(supervisor pid {state['supervisor_pid']}); run `fleetpulse down` first"
            )

    def start_all(self) -> None:
        s = self.settings
        m = self.monitoring
        if self.restart_policy is None:
            self.restart_policy = RestartPolicy.from_env(os.environ)
        self.refuse_second_instance()
        check_java()
        for name in drop_kafka_properties(os.environ):
            self.say(f"ignoring {name}: `up` runs its own plaintext broker for its processes")
        prometheus_bin = find_prometheus(m.prometheus_bin) if m.prometheus else ""
        s.run_dir.mkdir(parents=True, exist_ok=True)
        s.log_dir.mkdir(parents=True, exist_ok=True)
        self._write_state()
        planned = [
            ("Kafka", s.kafka_port),
            ("Kafka controller", s.kafka_controller_port),
            ("Redis", s.redis_port),
        ]
        if module_exists("ws_gateway.cli"):
            planned.append(("websocket gateway", s.gateway_port))
        if module_exists("alerting.cli"):
            planned.append(("alert dispatcher metrics", s.dispatcher_metrics_port))
        if module_exists("alerting.local_receiver"):
            planned.append(("local alert receiver (--receiver-port)", s.receiver_port))
        if not s.flink_url:
            planned += [
                ("tracking job metrics", s.tracking_metrics_port),
                ("tracking job REST", s.tracking_rest_port),
            ]
            if module_exists("flink_jobs.delay.job"):
                planned += [
                    ("delay job metrics", s.delay_metrics_port),
                    ("delay job REST", s.delay_rest_port),
                ]
        if exporter_available():
            planned.append(("fleetpulse exporter", m.exporter_port))
        if m.prometheus:
            planned.append(("Prometheus", m.prometheus_port))
        for component, port in planned:
            check_port_free(port, component)

        self.say(f"starting Kafka on {s.kafka_bootstrap}")
        broker = KafkaBroker(s.data_dir / "kafka", s.kafka_port, s.kafka_controller_port)
        # a restart reuses the formatted log directory (and its topics and offsets)
        self._add(
            Component(
                "kafka",
                broker.start(s.log_dir / "kafka.log"),
                ports=[s.kafka_port],
                restart=lambda: broker.process(s.log_dir / "kafka.log").start(),
            )
        )
        create_topics(broker.bootstrap, contract_topics())
        self.say(f"starting Redis on port {s.redis_port} (AOF everysec, password required)")
        # every client gets the URL with <data>/redis.secret's password, in its environment
        self.settings = s = replace(s, redis_password=redis_password(s.data_dir))
        redis = RedisServer(s.data_dir / "redis", s.redis_port, password=s.redis_password)
        # a restart replays the append-only file, with the same password (auth.conf)
        self._add(
            Component(
                "redis",
                redis.start(s.log_dir / "redis.log"),
                ports=[s.redis_port],
                restart=lambda: ManagedProcess(
                    "redis", redis.argv(), s.log_dir / "redis.log"
                ).start(),
            )
        )
        self._start_jobs()
        if module_exists("alerting.local_receiver"):
            self._start_receiver()  # before the dispatcher: its first delivery finds it
        if module_exists("alerting.cli"):
            self._start_dispatcher()
        if module_exists("ws_gateway.cli"):
            self._start_gateway()
        if exporter_available():
            self._start_exporter()
        if s.simulate and module_exists("simulator.cli"):
            self._start_simulator()
        if m.prometheus:
            self._start_prometheus(prometheus_bin)
        self.ready = True
        self._write_state()

    def _add(self, component: Component) -> None:
        if component.restart is None:  # started the ordinary way: again with the same argv
            p = component.process
            component.restart = lambda: ManagedProcess(p.name, p.argv, p.log_path, p.env).start()
        component.history = RestartHistory(self.policy)
        self.components.append(component)
        self._write_state()

    def _spawn(self, name: str, argv: list[str], **kw: object) -> ManagedProcess:
        return ManagedProcess(name, argv, self.settings.log_dir / f"{name}.log", **kw).start()  # type: ignore[arg-type]

    def _job_args(self, group: str, metrics_port: int, rest_port: int) -> list[str]:
        s = self.settings
        args = [
            "--bootstrap",
            s.kafka_bootstrap,
            "--group-id",
            group,
            "--parallelism",
            str(s.parallelism),
            "--checkpoint-dir",
            str(s.data_dir / "flink" / "checkpoints" / group),
            "--checkpoint-interval-ms",
            str(s.checkpoint_interval_ms),
            "--restore",
            "latest",
        ]
        if not s.flink_url:
            args += ["--metrics-port", str(metrics_port), "--rest-port", str(rest_port)]
        return args

    def job_cpus(self, count: int) -> list[str]:
        """``--cpus`` of each of ``count`` embedded jobs: a CPU each with ``pin_jobs``
        (round robin), "" (anywhere) otherwise and for jobs submitted to a cluster."""
        if not self.settings.pin_jobs or self.settings.flink_url:
            return [""] * count
        return [format_cpu_list(cpus) for cpus in one_cpu_each(count)]

    def _start_jobs(self) -> None:
        s = self.settings
        jobs = [
            (
                "tracking-job",
                "flink_jobs.tracking.job",
                "fleetpulse-tracking",
                s.tracking_metrics_port,
                s.tracking_rest_port,
            )
        ]
        if module_exists("flink_jobs.delay.job"):
            jobs.append(
                (
                    "delay-job",
                    "flink_jobs.delay.job",
                    "fleetpulse-delay",
                    s.delay_metrics_port,
                    s.delay_rest_port,
                )
            )
        placement = self.job_cpus(len(jobs))
        for (name, module, group, metrics_port, rest_port), cpus in zip(
            jobs, placement, strict=True
        ):
            args = self._job_args(group, metrics_port, rest_port)
            if cpus:
                args += ["--cpus", cpus]
            # the job's Flink name is its consumer group (fleetpulse-tracking, fleetpulse-delay)
            rest = normalize_url(s.flink_url) if s.flink_url else f"http://127.0.0.1:{rest_port}"
            self.jobs.append(JobInfo(name, group, rest, group))
            self.groups[name] = group
            if s.flink_url:
                self.say(f"submitting {name} to {s.flink_url} with flink run -py")
                # the job's driver runs here: the URL (with the password) goes in its
                # environment, not in argv where `ps` and the Flink UI would show it
                env = {"FLEETPULSE_REDIS_URL": s.redis_url}
                self.submitted_jobs.append(flink.submit(s.flink_url, module, args, env=env))
                continue
            self.say(f"starting {name} (embedded Flink MiniCluster)")
            env = flink.flink_env()
            env["FLINK_LOG_DIR"] = str(s.log_dir / f"flink-{name}")  # the MiniCluster's own log
            env["FLEETPULSE_REDIS_URL"] = s.redis_url  # not in argv: `ps` would show the password
            proc = self._spawn(name, flink.embedded_job_argv(module, args), env=env)
            self._add(
                Component(
                    name,
                    proc,
                    urls={
                        "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
                        "flink": f"http://127.0.0.1:{rest_port}/jobs/overview",
                    },
                )
            )

    def _start_dispatcher(self) -> None:
        s = self.settings
        argv = [
            sys.executable,
            "-m",
            "alerting",
            "run",
            "--bootstrap",
            s.kafka_bootstrap,
            "--state-dir",
            str(s.data_dir / "alerting"),
            "--metrics-port",
            str(s.dispatcher_metrics_port),
            "--group-id",
            DISPATCHER_GROUP,
        ]
        self.groups["alert-dispatcher"] = DISPATCHER_GROUP
        if s.alerting_config:
            argv += ["--config", s.alerting_config]
        self.say("starting the alert dispatcher")
        env = {
            # the packaged config's webhook may sign with the public demo secret under `up` only
            # (a --alerting-config that does; the packaged one gets webhook_env's secret)
            "FLEETPULSE_ALLOW_DEMO_SECRET": "1",
            **self.webhook_env(),
            # client_url of alerts: the live map of `up` (the packaged config's global.map_url)
            "FLEETPULSE_MAP_URL": os.environ.get(
                "FLEETPULSE_MAP_URL", f"http://127.0.0.1:{s.gateway_port}/"
            ),
        }
        self._add(
            Component(
                "alert-dispatcher",
                self._spawn("alert-dispatcher", argv, env=env),
                urls={"metrics": f"http://127.0.0.1:{s.dispatcher_metrics_port}/metrics"},
            )
        )

    def webhook_env(self) -> dict[str, str]:
        """The packaged configuration's webhook settings for the dispatcher and the local
        receiver: the secret (``FLEETPULSE_WEBHOOK_SECRET`` if set, else one generated for
        this data directory) and, unless ``FLEETPULSE_WEBHOOK_URL`` is set, the receiver's
        URL."""
        s = self.settings
        env = {"FLEETPULSE_WEBHOOK_SECRET": webhook_secret(s.data_dir)}
        if not os.environ.get("FLEETPULSE_WEBHOOK_URL"):
            env["FLEETPULSE_WEBHOOK_URL"] = f"http://127.0.0.1:{s.receiver_port}/alerts"
        return env

    def _start_receiver(self) -> None:
        s = self.settings
        argv = [
            sys.executable,
            "-m",
            "alerting.local_receiver",
            "--port",
            str(s.receiver_port),
            "--secret-env",
            "FLEETPULSE_WEBHOOK_SECRET",
            "--out",
            str(s.received_file),
        ]
        self.say(f"starting the local alert receiver on port {s.receiver_port}")
        proc = self._spawn("alert-receiver", argv, env=self.webhook_env())
        wait_until(
            lambda: port_open(s.receiver_port) or not proc.alive(), 60, "the local alert receiver"
        )
        self._add(
            Component(
                "alert-receiver",
                proc,
                ports=[s.receiver_port],
                urls={
                    "webhook": f"http://127.0.0.1:{s.receiver_port}/alerts",
                    "received": str(s.received_file),
                },
            )
        )

    def _start_gateway(self) -> None:
        s = self.settings
        argv = [
            sys.executable,
            "-m",
            "ws_gateway",
            "run",
            "--bootstrap",
            s.kafka_bootstrap,
            "--port",
            str(s.gateway_port),
        ]
        self.say(f"starting the websocket gateway on port {s.gateway_port}")
        secret = gateway_secret(s.run_dir)
        env = {"FLEETPULSE_GATEWAY_SECRET": secret, "FLEETPULSE_REDIS_URL": s.redis_url}
        proc = self._spawn("ws-gateway", argv, env=env)
        from ws_gateway.tokens import ALL_REGIONS, sign_token

        token = sign_token(secret, "fleetpulse-up", [ALL_REGIONS], int(time.time()) + 7 * 86400)
        wait_until(
            lambda: port_open(s.gateway_port) or not proc.alive(), 60, "the websocket gateway"
        )
        self._add(
            Component(
                "ws-gateway",
                proc,
                ports=[s.gateway_port],
                urls={
                    "map": f"http://127.0.0.1:{s.gateway_port}/?token={token}",
                    "metrics": f"http://127.0.0.1:{s.gateway_port}/metrics",
                },
            )
        )

    def _start_exporter(self) -> None:
        s, port = self.settings, self.monitoring.exporter_port
        argv = [
            sys.executable,
            "-m",
            "fleetpulse.cli",
            "exporter",
            "--port",
            str(port),
            "--bootstrap",
            s.kafka_bootstrap,
        ]
        for url in sorted({j.rest_url for j in self.jobs}):
            argv += ["--flink-url", url]
        for group in sorted(set(self.groups.values())):
            argv += ["--group", group]
        self.say(f"starting the fleetpulse exporter on port {port}")
        proc = self._spawn("exporter", argv, env={"FLEETPULSE_REDIS_URL": s.redis_url})
        wait_until(lambda: port_open(port) or not proc.alive(), 60, "the fleetpulse exporter")
        self._add(
            Component(
                "exporter", proc, ports=[port], urls={"metrics": f"http://127.0.0.1:{port}/metrics"}
            )
        )

    def scrape_targets(self) -> dict[str, list[str]]:
        """Prometheus scrape job -> HOST:PORT of each component with a /metrics endpoint.
        Jobs submitted to a cluster (--flink-url) report through the cluster's own reporters,
        whose addresses `up` does not know: their metrics come only through the exporter."""
        s, m = self.settings, self.monitoring
        running = {c.name for c in self.components}
        targets: dict[str, list[str]] = {}
        if not s.flink_url:
            for name, port in (
                ("tracking-job", s.tracking_metrics_port),
                ("delay-job", s.delay_metrics_port),
            ):
                if name in running:
                    targets[name] = [f"127.0.0.1:{port}"]
        for name, port in (
            ("alert-dispatcher", s.dispatcher_metrics_port),
            ("ws-gateway", s.gateway_port),
        ):
            if name in running:
                targets[name] = [f"127.0.0.1:{port}"]
        if "exporter" in running:
            targets["fleetpulse-exporter"] = [f"127.0.0.1:{m.exporter_port}"]
        targets["prometheus"] = [f"127.0.0.1:{m.prometheus_port}"]
        return targets

    def _start_prometheus(self, binary: str) -> None:
        s, port = self.settings, self.monitoring.prometheus_port
        home = s.data_dir / "prometheus"
        cfg = prometheus.write_config(
            home / "prometheus.yml",
            prometheus.config(self.scrape_targets(), prometheus.rule_files()),
        )
        self.say(f"starting Prometheus on port {port} ({cfg})")
        proc = self._spawn("prometheus", prometheus.argv(binary, cfg, home / "data", port))
        wait_until(lambda: port_open(port) or not proc.alive(), 60, "Prometheus")
        self._add(
            Component(
                "prometheus",
                proc,
                ports=[port],
                urls={"ui": f"http://127.0.0.1:{port}", "config": str(cfg)},
            )
        )

    def _start_simulator(self) -> None:
        s = self.settings
        # A day of back-filled history first (so delays and stuck shipments exist at once),
        # then live; every alert class fires within a few minutes at this speed-up.
        argv = [
            sys.executable,
            "-m",
            "simulator",
            "simulate",
            "--bootstrap",
            s.kafka_bootstrap,
            "--trucks",
            str(s.trucks),
            "--speedup",
            f"{s.speedup:g}",
            "--seed",
            str(s.seed),
            "--hours",
            "720",
            "--backfill-hours",
            "26",
            "--no-progress",
        ]
        self.say(f"starting the simulator ({s.trucks} trucks, speed-up x{s.speedup:g})")
        # restarted live: a second back-fill would replay a day the jobs have already seen
        again = [*argv[: argv.index("--backfill-hours") + 1], "0", "--no-progress"]
        self._add(
            Component(
                "simulator",
                self._spawn("simulator", argv),
                restart=lambda: self._spawn("simulator", again),
            )
        )

    # -- watching and stopping ---------------------------------------------------------------

    def first_dead(self) -> Component | None:
        """The first component that died and has no restart pending yet."""
        for c in self.components:
            if c.restart_at is None and not c.process.alive():
                return c
        return None

    def watch(self, poll_s: float = 0.5) -> int:
        """Restart components that die until a signal, or until one keeps dying (then stop
        everything); returns the exit status."""
        stop_requested: list[int] = []

        def on_signal(signum: int, _frame: object) -> None:
            stop_requested.append(signum)

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop_requested:
            failed = self.tend(time.monotonic())
            if failed is not None:
                self.say(self._give_up_message(failed))
                self.stop_all()
                return 1
            time.sleep(poll_s)
        self.say("stopping fleetpulse")
        self.stop_all()
        return 0

    def tend(self, now: float) -> Component | None:
        """One round of supervision at monotonic time ``now``: schedule the restart of each
        component found dead, start those whose backoff has passed. Returns a component
        that died too often (the stack must stop), else None."""
        for c in self.components:
            died = c.restart_at is None and not c.process.alive()
            if died and not self._schedule_restart(c, now, c.process.exit_code()):
                return c
            due = c.restart_at is not None and now >= c.restart_at
            if due and not self._restart(c) and not self._schedule_restart(c, now, None):
                return c
        return None

    def _schedule_restart(self, c: Component, now: float, code: int | None) -> bool:
        if code is not None:  # None: a restart that failed to start keeps the last status
            c.last_exit = code
            # what the dead process left in its group (a job's JVM, holding its ports)
            kill_group(c.process.pid, signal.SIGKILL)
        delay = None if c.restart is None or c.history is None else c.history.on_death(now)
        if delay is None:
            return False
        c.restart_at = now + delay
        self.say(
            f"component {c.name} exited ({describe_exit(code)}); restarting it in {delay:g} s "
            f"(restart {len(c.history.deaths) if c.history else 1} of at most "
            f"{self.policy.max_restarts} within {self.policy.window_s:g} s)"
        )
        self._write_state()
        return True

    def _restart(self, c: Component) -> bool:
        """Start ``c`` again; False when that failed at once (a death like any other)."""
        assert c.restart is not None
        c.restart_at = None
        try:
            c.process = c.restart()
        except (OSError, PlatformError) as exc:
            self.say(f"could not restart {c.name}: {exc}")
            return False
        if c.history is not None:
            c.history.restarts += 1
        c.last_restart = time.time()
        self.say(f"restarted {c.name} (pid {c.process.pid})")
        self._write_state()
        return True

    def _give_up_message(self, c: Component) -> str:
        p = self.policy
        deaths = len(c.history.deaths) if c.history else 1
        return (
            f"component {c.name} exited ({describe_exit(c.last_exit)}), {deaths} times within "
            f"{p.window_s:g} s (at most {p.max_restarts} restarts): stopping fleetpulse; "
            f"last lines of {c.process.log_path}:\n{c.process.log_tail()}"
        )

    def stop_all(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self.submitted_jobs and self.settings.flink_url:
            base = (
                self.settings.flink_url
                if "://" in self.settings.flink_url
                else f"http://{self.settings.flink_url}"
            )
            for job_id in self.submitted_jobs:
                try:
                    flink.cancel(base, job_id)
                except OSError as exc:
                    self.say(f"could not cancel Flink job {job_id}: {exc}")
        for c in reversed(self.components):
            c.process.stop()
        state = read_state(self.settings.state_file)
        if state and int(state["supervisor_pid"]) == os.getpid():
            remove_state(self.settings.state_file)  # only our own: never a running instance's

    def _write_state(self) -> None:
        write_state(
            self.settings.state_file,
            {
                "supervisor_pid": os.getpid(),
                "ready": self.ready,
                "started": self._started,
                "data_dir": str(self.settings.data_dir),
                "flink_url": self.settings.flink_url,
                "submitted_jobs": self.submitted_jobs,
                "kafka_bootstrap": self.settings.kafka_bootstrap,
                "redis_url": self.settings.redis_url,
                "jobs": [asdict(j) for j in self.jobs],
                "groups": self.groups,
                "components": {
                    c.name: {
                        "pid": c.process.pid,
                        "ports": c.ports,
                        "urls": c.urls,
                        "restarts": c.restart_record(),
                    }
                    for c in self.components
                    if c.process.popen is not None
                },
            },
        )


def gateway_secret(run_dir: Path) -> str:
    """A per-installation signing secret for gateway tokens, created once, never committed."""
    path = run_dir.parent / "gateway.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(os.urandom(32).hex())
        path.chmod(0o600)
    return path.read_text().strip()


def webhook_secret(data_dir: Path) -> str:
    """``FLEETPULSE_WEBHOOK_SECRET``, or a secret of this data directory created once
    (``<data>/webhook.secret``): `up`'s webhook never signs with the public demo secret."""
    given = os.environ.get("FLEETPULSE_WEBHOOK_SECRET", "")
    if given:
        return given
    path = data_dir / "webhook.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created 0600, never readable by others
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex())
    return path.read_text().strip()


def read_state(path: Path) -> dict | None:  # type: ignore[type-arg]
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def write_state(path: Path, state: dict) -> None:  # type: ignore[type-arg]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the Redis URL
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(state, indent=2))
    tmp.replace(path)


def remove_state(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def stop_running(state_file: Path, timeout_s: float = 60.0) -> bool:
    """`fleetpulse down`: ask the supervisor to stop, then make sure nothing is left."""
    state = read_state(state_file)
    if not state:
        return False
    pid = int(state["supervisor_pid"])
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(Exception):  # then kill the groups below
            wait_until(lambda: not pid_alive(pid), timeout_s, "the supervisor to stop")
    for info in state.get("components", {}).values():
        kill_group(int(info["pid"]), signal.SIGKILL)
    remove_state(state_file)
    return True


def describe_exit(code: int | None) -> str:
    """An exit status as people read it: ``status 1``, ``killed by SIGKILL``."""
    if code is None:
        return "status unknown"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"status {code}"


def describe_restarts(record: dict | None) -> str:  # type: ignore[type-arg]
    """`status`' note of a component's restarts under `up` ("" when it never died)."""
    if not record or not (record.get("count") or record.get("restarting")):
        return ""
    count = int(record.get("count", 0))
    text = f"{count} restart{'' if count == 1 else 's'} by up"
    if record.get("last_restart"):
        when = time.strftime("%H:%M:%S", time.localtime(float(record["last_restart"])))
        text += f", last at {when}"
    exited = describe_exit(record.get("last_exit"))
    if record.get("restarting"):
        return f"{text}; restarting after it exited ({exited})"
    return f"{text} after it exited ({exited})"


def component_health(name: str, info: dict) -> tuple[bool, str]:  # type: ignore[type-arg]
    """(healthy, detail) for one recorded component, with its restarts under `up`."""
    healthy, detail = _process_health(info)
    restarts = describe_restarts(info.get("restarts"))
    return healthy, f"{detail} ({restarts})" if restarts else detail


def _process_health(info: dict) -> tuple[bool, str]:  # type: ignore[type-arg]
    pid = int(info["pid"])
    if not pid_alive(pid):
        return False, f"process {pid} is not running"
    for port in info.get("ports", []):
        if not port_open(port):
            return False, f"pid {pid} alive but port {port} is not accepting connections"
    flink_url = info.get("urls", {}).get("flink")
    if flink_url:
        try:
            jobs = flink.jobs_overview(flink_url.rsplit("/jobs", 1)[0])
        except OSError as exc:
            return False, f"pid {pid} alive, Flink REST not answering ({exc})"
        states = ",".join(j.get("state", "?") for j in jobs) or "no job yet"
        return all(j.get("state") == "RUNNING" for j in jobs) and bool(jobs), f"job {states}"
    return True, f"pid {pid} running"


def drop_kafka_properties(environ: MutableMapping[str, str]) -> list[str]:
    """Remove the user's Kafka client properties (a secured cluster's) from ``environ``, which
    every process `up` starts inherits: they talk to `up`'s own plaintext broker, and SASL or
    TLS settings made for another cluster would stop them all. Returns the names removed."""
    return [name for name in (FILE_ENV, PROPERTY_ENV) if environ.pop(name, None) is not None]
