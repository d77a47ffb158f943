"""docker/docker-compose.yml agrees with the repository it builds and runs.

No Docker engine is needed: the compose file, the Dockerfiles, prometheus.yml and .dockerignore
are parsed and checked against the code. Every service has an image or a Dockerfile that exists;
every COPY source exists in the build context and is not excluded by .dockerignore; every
`python -m X ...` names a module whose CLI parses the flags given (the real click parser runs,
with every command's body replaced by a no-op); every `flink run -py FILE -- FLAGS` names a file
the image contains and flags (and FLEETPULSE_* variables) the job's own parser accepts; the
Prometheus targets are services listening on those ports; the Kafka init creates exactly the
contract topics.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from flink_jobs.delay.settings import DelaySettings
from flink_jobs.runtime.settings import JobSettings, env_name, fields_of
from flink_jobs.tracking.settings import TrackingSettings
from udfs.contract import contract_topics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker" / "docker-compose.yml"
PACKAGES = ("fleetpulse", "flink_jobs", "udfs", "alerting", "ws_gateway", "simulator")
FILE_SUFFIXES = (".py", ".yaml", ".yml", ".sh", ".json", ".toml")
HOST_FLAGS = ("--bootstrap", "--bootstrap-server", "--redis-url")
# Each job file's settings (its flags and FLEETPULSE_* variables).
JOB_SETTINGS: dict[str, type[JobSettings]] = {
    "flink_jobs.tracking.job": TrackingSettings,
    "flink_jobs.delay.job": DelaySettings,
}

# -- compose loading --------------------------------------------------------------------------

_VAR = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}"
    r"|([A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any) -> Any:
    """Compose's variable substitution with an empty environment: defaults are taken, required
    variables get a placeholder, a variable with neither is an error (compose would silently
    substitute an empty string)."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1):
                return "$"
            name, op, arg = m.group(2) or m.group(5), m.group(3), m.group(4)
            if op in (":-", "-"):
                return arg
            if op in (":?", "?"):
                return f"placeholder-{name.lower()}"
            raise AssertionError(
                f"${{{name}}} in the compose file has no default and is not "
                "marked required (${VAR:-default} or ${VAR:?message})"
            )

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    return interpolate(data)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def logical_lines(script: str) -> list[str]:
    return [
        ln.strip()
        for ln in script.replace("\\\n", " ").splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]


def argvs(svc: dict[str, Any]) -> list[list[str]]:
    """The command lines a service runs (a shell script's lines, one argv each)."""
    cmd = svc.get("command")
    if cmd is None:
        return []
    argv = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
    shells = {"bash", "/bin/bash", "sh", "/bin/sh"}
    if argv and argv[0] in shells and len(argv) >= 3 and argv[1].startswith("-") and "c" in argv[1]:
        return [shlex.split(line) for line in logical_lines(argv[2])]
    return [argv]


# -- Dockerfiles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str  # absolute, in the image
    from_stage: str | None
    final_stage: bool


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    out = []
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def dockerfile_copies(path: Path) -> list[Copy]:
    instructions = dockerfile_instructions(path)
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    copies, workdir = [], "/"
    for i, (keyword, rest) in enumerate(instructions):
        if keyword == "FROM":
            workdir = "/"
        elif keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / rest)
        elif keyword in ("COPY", "ADD"):
            tokens = [
                t for t in (yaml.safe_load(rest) if rest.startswith("[") else shlex.split(rest))
            ]
            flags = {t.split("=", 1)[0]: t.partition("=")[2] for t in tokens if t.startswith("--")}
            paths = [t for t in tokens if not t.startswith("--")]
            dest = paths[-1]
            absolute = str(PurePosixPath(workdir) / dest) + ("/" if dest.endswith("/") else "")
            copies.append(Copy(tuple(paths[:-1]), absolute, flags.get("--from"), i > last_from))
    return copies


def dockerignore_patterns(context: Path) -> list[str]:
    f = context / ".dockerignore"
    if not f.exists():
        return []
    return [
        ln.strip()
        for ln in f.read_text().splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]


def ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule, closely enough: a path is excluded when it or a parent matches."""
    parts = rel.strip("/").split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pat = (raw[1:] if negate else raw).strip("/")

        def match(candidate: str, pat: str = pat) -> bool:
            if pat.startswith("**/"):
                cparts = candidate.split("/")
                return any(
                    fnmatch.fnmatchcase("/".join(cparts[i:]), pat[3:]) for i in range(len(cparts))
                )
            return fnmatch.fnmatchcase(candidate, pat)

        if any(match(c) for c in candidates):
            result = not negate
    return result


def build_of(svc: dict[str, Any]) -> tuple[Path, Path] | None:
    build = svc.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    return context, context / build.get("dockerfile", "Dockerfile")


def container_to_repo(svc: dict[str, Any], container_path: str) -> Path | None:
    """The repository file that ends up at ``container_path`` in this service's container:
    through a bind mount, or through a COPY of its image's final stage."""
    for vol in svc.get("volumes") or []:
        if isinstance(vol, str) and vol.startswith("."):
            src, dst = vol.split(":")[:2]
            host = (COMPOSE_FILE.parent / src).resolve()
            if container_path == dst:
                return host
            if container_path.startswith(dst.rstrip("/") + "/"):
                return host / container_path[len(dst.rstrip("/")) + 1 :]
    built = build_of(svc)
    if built is None:
        return None
    context, dockerfile = built
    for copy in dockerfile_copies(dockerfile):
        if copy.from_stage or not copy.final_stage:
            continue
        into_dir = copy.dest.endswith("/") or len(copy.sources) > 1
        dest = copy.dest.rstrip("/")
        for src in copy.sources:
            repo = context / src
            target = f"{dest}/{PurePosixPath(src).name}" if into_dir and repo.is_file() else dest
            if container_path == target:
                return repo
            if repo.is_dir() and container_path.startswith(target + "/"):
                return repo / container_path[len(target) + 1 :]
    return None


# -- what runs where -----------------------------------------------------------------------------


def python_module_runs(svc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    runs = []
    for argv in argvs(svc):
        for i, tok in enumerate(argv[:-2]):
            if re.fullmatch(r"(.*/)?python(3(\.\d+)?)?", tok) and argv[i + 1] == "-m":
                runs.append((argv[i + 2], argv[i + 3 :]))
                break
    return runs


@dataclass(frozen=True)
class FlinkRun:
    argv: list[str]
    py: str
    job_args: list[str]
    wrapper_name: str | None  # JOB_NAME given to docker/submit-job.sh


def flink_runs(svc: dict[str, Any]) -> list[FlinkRun]:
    runs = []
    for argv in argvs(svc):
        for i, tok in enumerate(argv[:-1]):
            if PurePosixPath(tok).name == "flink" and argv[i + 1] == "run":
                run = argv[i + 2 :]
                flag = next(f for f in ("-py", "--python") if f in run)
                py = run[run.index(flag) + 1]
                after = run[run.index(flag) + 2 :]
                job_args = after[after.index("--") + 1 :] if "--" in after else after
                wrapper = argv[1] if i >= 2 and argv[0].endswith("submit-job.sh") else None
                runs.append(FlinkRun(argv, py, job_args, wrapper))
                break
    return runs


def flag_values(argv: list[str], flag: str) -> list[str]:
    out = [argv[i + 1] for i, t in enumerate(argv[:-1]) if t == flag]
    out += [t.split("=", 1)[1] for t in argv if t.startswith(flag + "=")]
    return out


def declared_ports(svc: dict[str, Any]) -> set[int]:
    ports = {int(str(p).split("/")[0]) for p in svc.get("expose") or []}
    for p in svc.get("ports") or []:
        target = p.get("target") if isinstance(p, dict) else str(p).split(":")[-1]
        ports.add(int(str(target).split("/")[0]))
    return ports


def flink_property(svc: dict[str, Any], key: str) -> str | None:
    """A Flink option as this container sees it: FLINK_PROPERTIES over the image's config."""
    for line in environment(svc).get("FLINK_PROPERTIES", "").splitlines():
        k, _, v = line.partition(":")
        if k.strip() == key:
            return v.strip()
    built = build_of(svc)
    if built is not None:
        m = re.search(rf"-D\s*{re.escape(key)}=(\S+)", built[1].read_text())
        if m:
            return m.group(1)
    return None


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def served_ports(name: str, services: dict[str, dict[str, Any]]) -> set[int]:
    """Ports something in this service's container listens on for other containers, from its
    command and configuration (not from what it declares). fleetpulse's servers listen on
    loopback unless told otherwise (``--host`` for ``--port``, ``--metrics-host`` for
    ``--metrics-port``), which another container cannot reach."""
    svc = services[name]
    ports: set[int] = set()
    for _, args in python_module_runs(svc):
        for port_flag, host_flag in (("--port", "--host"), ("--metrics-port", "--metrics-host")):
            hosts = flag_values(args, host_flag) or ["127.0.0.1"]
            if hosts[-1] not in LOOPBACK:
                ports |= {int(v) for v in flag_values(args, port_flag)}
    if build_of(svc) and "flink" in str(build_of(svc)[1]):  # type: ignore[index]
        prom = flink_property(svc, "metrics.reporter.prom.port")
        if prom:
            ports.add(int(prom))
        if svc.get("command") == "jobmanager":
            ports.add(int(flink_property(svc, "rest.port") or 8081))
    if not build_of(svc):  # a stock image: what it publishes is what it serves
        ports |= declared_ports(svc)
    return ports


# -- the checks ----------------------------------------------------------------------------------


def test_every_service_has_an_image_or_an_existing_dockerfile(services: dict[str, Any]) -> None:
    assert services
    for name, svc in services.items():
        built = build_of(svc)
        assert built or svc.get("image"), f"{name}: neither image nor build"
        if built:
            context, dockerfile = built
            assert context.is_dir(), f"{name}: build context {context} missing"
            assert dockerfile.is_file(), f"{name}: Dockerfile {dockerfile} missing"


def test_copy_sources_exist_and_are_not_dockerignored(services: dict[str, Any]) -> None:
    checked = 0
    for name, svc in services.items():
        built = build_of(svc)
        if not built:
            continue
        context, dockerfile = built
        patterns = dockerignore_patterns(context)
        for copy in dockerfile_copies(dockerfile):
            if copy.from_stage:
                continue
            for src in copy.sources:
                matches = (
                    list(context.glob(src)) if any(c in src for c in "*?[") else [context / src]
                )
                assert matches and all(m.exists() for m in matches), (
                    f"{name}: {dockerfile.name}: COPY source {src} not in {context}"
                )
                for m in matches:
                    rel = m.relative_to(context).as_posix()
                    assert not ignored(rel, patterns), (
                        f"{name}: {dockerfile.name}: COPY source {rel} is excluded by .dockerignore"
                    )
                checked += 1
    assert checked >= 10


def test_dockerignore_keeps_local_state_out(services: dict[str, Any]) -> None:
    patterns = dockerignore_patterns(ROOT)
    for rel in (
        ".venv/bin/python",
        ".fleetpulse/run/up.json",
        "ws_gateway/web/node_modules/x",
        "alerting/__pycache__/cli.cpython-311.pyc",
        ".git/HEAD",
    ):
        assert ignored(rel, patterns), f".dockerignore does not exclude {rel}"


def test_python_modules_exist_and_accept_their_flags(services: dict[str, Any]) -> None:
    """Runs each service's `python -m X ARGS` through X's real click parser (the command bodies
    replaced by a no-op), with the service's environment: unknown flags, bad values, a missing
    subcommand all fail here as they would in the container."""
    probe = (
        "import runpy, sys, click\n"
        "click.Command.invoke = lambda self, ctx: None\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
    )
    seen = set()
    for name, svc in services.items():
        for module, args in python_module_runs(svc):
            seen.add(module)
            assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
            assert importlib.util.find_spec(f"{module}.__main__") is not None, (
                f"{name}: {module} has no __main__ (python -m {module} cannot run)"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
            env |= environment(svc)
            proc = subprocess.run(
                [sys.executable, "-c", probe, module, *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, (
                f"{name}: python -m {module} {shlex.join(args)} is rejected:\n{proc.stderr}"
            )
    assert {"alerting", "ws_gateway", "simulator"} <= seen


def test_absolute_file_paths_in_commands_exist_in_the_container(services: dict[str, Any]) -> None:
    checked = 0
    for name, svc in services.items():
        for argv in argvs(svc):
            for tok in argv:
                path = tok.split("=", 1)[-1]
                if not (path.startswith("/") and path.endswith(FILE_SUFFIXES)):
                    continue
                repo = container_to_repo(svc, path)
                if repo is None and not build_of(svc):
                    continue  # a file of a stock image
                assert repo is not None and repo.is_file(), (
                    f"{name}: {path} is not put into the container by its image or a mount"
                )
                checked += 1
    assert checked >= 4


def test_flink_run_files_and_job_flags(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = set()
    for name, svc in services.items():
        for run in flink_runs(svc):
            repo = container_to_repo(svc, run.py)
            assert repo is not None and repo.is_file(), (
                f"{name}: flink run -py {run.py}: the image has no such file"
            )
            module_name = ".".join(repo.relative_to(ROOT).with_suffix("").parts)
            importlib.import_module(module_name)
            jobs.add(module_name)
            for key in [k for k in os.environ if k.startswith("FLEETPULSE_")]:
                monkeypatch.delenv(key)
            for key, value in environment(svc).items():
                monkeypatch.setenv(key, value)
            try:
                JOB_SETTINGS[module_name].from_argv(run.job_args)
            except SystemExit:
                pytest.fail(
                    f"{name}: {module_name} rejects {shlex.join(run.job_args)}:\n"
                    f"{capsys.readouterr().err}"
                )
            if run.wrapper_name is not None:
                assert f'"{run.wrapper_name}"' in repo.read_text(), (
                    f"{name}: {run.wrapper_name} is not {module_name}'s job name, so "
                    "submit-job.sh would not see that the job already runs"
                )
    assert jobs == {"flink_jobs.tracking.job", "flink_jobs.delay.job"}


def test_job_environment_variables_are_job_settings(services: dict[str, Any]) -> None:
    """A job ignores variables that are not its settings (the environment is shared), so a
    misspelt one would go unnoticed: each must be a setting of a job the service runs."""
    sources = "\n".join(p.read_text() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    checked = 0
    for name, svc in services.items():
        names: set[str] = set()
        for run in flink_runs(svc):
            repo = container_to_repo(svc, run.py)
            assert repo is not None
            module_name = ".".join(repo.relative_to(ROOT).with_suffix("").parts)
            names |= {env_name(field) for field in fields_of(JOB_SETTINGS[module_name])}
        if flink_runs(svc):
            for key in environment(svc):
                if key.startswith("FLEETPULSE_"):
                    assert key in names, f"{name}: {key} is not a setting of the jobs it runs"
                    checked += 1
        built = build_of(svc)
        if built and flink_runs(svc):
            for keyword, rest in dockerfile_instructions(built[1]):
                if keyword != "ENV":
                    continue
                for key in re.findall(r"(FLEETPULSE_[A-Z0-9_]+)=", rest):
                    assert key in names or f'"{key}"' in sources, (
                        f"{built[1].name}: nothing reads ENV {key}"
                    )
                    checked += 1
    assert checked >= 2


def test_service_environment_variables_are_read(services: dict[str, Any]) -> None:
    """A FLEETPULSE_* variable given to `python -m X` appears in X's package (a click envvar,
    a ${VAR} of its configuration file)."""
    for name, svc in services.items():
        for module, _ in python_module_runs(svc):
            package = ROOT / module.split(".")[0]
            text = "\n".join(
                p.read_text()
                for p in package.rglob("*")
                if p.is_file() and p.suffix in (".py", ".yaml", ".yml")
            )
            for key in environment(svc):
                if key.startswith("FLEETPULSE_"):
                    assert key in text, f"{name}: {module} never reads {key}"


def test_hosts_in_commands_are_services(services: dict[str, Any]) -> None:
    checked = 0
    for name, svc in services.items():
        command_lines: list[tuple[list[str], tuple[str, ...]]] = [
            (argv, HOST_FLAGS) for argv in argvs(svc)
        ]
        command_lines += [(run.argv[run.argv.index("run") :], ("-m",)) for run in flink_runs(svc)]
        for argv, flags in command_lines:
            for flag in flags:
                for value in flag_values(argv, flag):
                    host = re.sub(r"^\w+://", "", value).split(":")[0].split("/")[0]
                    assert host in services, f"{name}: {flag} {value}: no service {host!r}"
                    checked += 1
    assert checked >= 8
    advertised = environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert "//kafka:9092" in advertised


def test_depends_on_conditions_can_be_met(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), (
                    f"{name} waits for {dep} to be healthy, but it has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert services[dep].get("restart", "no") == "no", (
                    f"{name} waits for {dep} to finish, but {dep} is restarted"
                )
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith((".", "/")):
                assert source in (compose.get("volumes") or {}), (
                    f"{name}: named volume {source} is not declared"
                )


def test_prometheus_targets_are_services_listening_there(services: dict[str, Any]) -> None:
    prom = next(s for s in services.values() if "prometheus" in str(s.get("image", "")))
    config_path = next(v for a in argvs(prom) for v in flag_values(a, "--config.file"))
    config_file = container_to_repo(prom, config_path)
    assert config_file is not None and config_file.is_file()
    config = yaml.safe_load(config_file.read_text())
    targets: list[tuple[str, str, int]] = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.append((job["job_name"], host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets += [(job["job_name"], host, int(dns["port"])) for host in dns["names"]]
    prom_name = next(n for n, s in services.items() if s is prom)
    scraped = set()
    for job, host, port in targets:
        host = prom_name if host == "localhost" else host
        assert host in services, f"prometheus job {job}: no service {host!r}"
        assert port in declared_ports(services[host]), (
            f"prometheus job {job}: {host} does not expose port {port}"
        )
        assert port in served_ports(host, services), (
            f"prometheus job {job}: nothing in {host} listens on {port}"
        )
        scraped.add(host)
    assert {"jobmanager", "taskmanager", "alert-dispatcher", "ws-gateway"} <= scraped


def test_kafka_init_creates_the_contract_topics(services: dict[str, Any]) -> None:
    created: dict[str, tuple[int, int]] = {}
    for svc in services.values():
        for argv in argvs(svc):
            if (
                not argv
                or PurePosixPath(argv[0]).name != "kafka-topics.sh"
                or "--create" not in argv
            ):
                continue
            configs = dict(c.split("=", 1) for c in flag_values(argv, "--config"))
            (topic,) = flag_values(argv, "--topic")
            (partitions,) = flag_values(argv, "--partitions")
            created[topic] = (int(partitions), int(configs.get("retention.ms", -1)))
    wanted = {t.name: (t.partitions, t.retention_ms) for t in contract_topics()}
    assert created == wanted


# -- metrics wiring: rules and dashboards ---------------------------------------------------------

RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
GRAFANA_DIR = ROOT / "deploy" / "grafana"


def service_with_image(services: dict[str, Any], image: str) -> tuple[str, dict[str, Any]]:
    return next((n, s) for n, s in services.items() if str(s.get("image", "")).startswith(image))


def test_bind_mounts_exist_in_the_repository(services: dict[str, Any]) -> None:
    checked = 0
    for name, svc in services.items():
        for vol in svc.get("volumes") or []:
            if isinstance(vol, dict):
                source = vol.get("source", "") if vol.get("type") == "bind" else ""
            else:
                source = vol.split(":")[0]
            if not source.startswith("."):
                continue
            host = (COMPOSE_FILE.parent / source).resolve()
            assert host.is_relative_to(ROOT), f"{name}: bind mount {source} is outside the repo"
            assert host.exists(), f"{name}: bind mount {source} does not exist"
            checked += 1
    assert checked >= 4


def test_prometheus_loads_every_rule_file(services: dict[str, Any]) -> None:
    _, prom = service_with_image(services, "prom/prometheus")
    config_path = next(v for a in argvs(prom) for v in flag_values(a, "--config.file"))
    config_file = container_to_repo(prom, config_path)
    assert config_file is not None
    patterns = yaml.safe_load(config_file.read_text()).get("rule_files") or []
    loaded: set[Path] = set()
    for pattern in patterns:
        directory, _, glob = pattern.rpartition("/")
        repo_dir = container_to_repo(prom, directory)
        assert repo_dir is not None and repo_dir.is_dir(), (
            f"rule_files {pattern}: {directory} is not mounted from the repository"
        )
        matched = set(repo_dir.glob(glob))
        assert matched, f"rule_files {pattern} matches no file"
        loaded |= matched
    assert loaded == set(RULES_DIR.glob("*.yml"))


def test_grafana_reads_the_prometheus_service(services: dict[str, Any]) -> None:
    _, grafana = service_with_image(services, "grafana/grafana")
    prov = container_to_repo(grafana, "/etc/grafana/provisioning")
    assert prov == GRAFANA_DIR / "provisioning"
    sources = [
        ds
        for f in sorted((prov / "datasources").glob("*.yml"))
        for ds in yaml.safe_load(f.read_text())["datasources"]
    ]
    (prom_ds,) = [ds for ds in sources if ds["type"] == "prometheus"]
    assert prom_ds.get("isDefault"), "the dashboards' DS_PROMETHEUS defaults to the default"
    url = urlsplit(prom_ds["url"])
    assert url.hostname in services, f"data source {url.geturl()}: no service {url.hostname}"
    assert str(services[url.hostname].get("image", "")).startswith("prom/prometheus")
    assert url.port in served_ports(url.hostname, services)
    condition = (grafana.get("depends_on") or {}).get(url.hostname, {}).get("condition")
    assert condition == "service_healthy"


def test_grafana_provisions_every_dashboard(services: dict[str, Any]) -> None:
    _, grafana = service_with_image(services, "grafana/grafana")
    prov = container_to_repo(grafana, "/etc/grafana/provisioning")
    assert prov is not None
    provisioned: set[Path] = set()
    for f in sorted((prov / "dashboards").glob("*.yml")):
        for provider in yaml.safe_load(f.read_text())["providers"]:
            assert provider["type"] == "file"
            folder = container_to_repo(grafana, provider["options"]["path"])
            assert folder is not None and folder.is_dir(), (
                f"{f.name}: {provider['options']['path']} is not mounted from the repository"
            )
            provisioned |= set(folder.glob("*.json"))
    assert provisioned == set((GRAFANA_DIR / "dashboards").glob("*.json"))
    home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        repo = container_to_repo(grafana, home)
        assert repo is not None and repo in provisioned, f"home dashboard {home} is not there"
