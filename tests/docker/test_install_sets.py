"""Each image installs what its component imports, and the dispatcher and gateway no PyFlink.

No Docker and no network. For every image docker/docker-compose.yml builds, the extras it
installs are read from its Dockerfile (the arguments of docker/requirements.py, with the
service's build args substituted) and resolved from pyproject.toml. What the image runs comes
from the compose file too: its services' `python -m X` and `flink run -py FILE`, the `fleetpulse`
subcommands of the same package, and the `python -c` lines of its Dockerfile. The third-party
modules those import are found by walking the AST of every project module they reach, lazy
imports inside functions included (like tests/unit/test_import_rules.py). Each must be provided
by a distribution of the image's requirement set or of its transitive requirements, computed
with importlib.metadata from this venv (installed with .[all]).
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fleetpulse.cli import SUBCOMMANDS
from tests.docker.test_compose import (
    COMPOSE_FILE,
    build_of,
    container_to_repo,
    dockerfile_instructions,
    flink_runs,
    interpolate,
    python_module_runs,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
REQUIREMENTS_SCRIPT = ROOT / "docker" / "requirements.py"
PROJECT_PACKAGES = {
    "fleetpulse",
    "flink_jobs",
    "udfs",
    "alerting",
    "ws_gateway",
    "simulator",
    "bench",
}
# PyFlink and the big distributions only it pulls in.
FLINK_DISTRIBUTIONS = {"apache-flink", "apache-flink-libraries", "pyarrow", "apache-beam"}
# Imported only when installed (the ImportError is handled); not dependencies on purpose.
OPTIONAL_MODULES = {"uvloop": "ws_gateway.cli --event-loop uvloop|auto, when installed"}
# The package an image runs (`python -m package...`) -> its extra; `fleetpulse` runs as the
# exporter (`python -m fleetpulse.exporter`), its other commands from the base.
COMPONENTS = {
    "alerting": "dispatcher",
    "ws_gateway": "gateway",
    "simulator": "simulator",
    "fleetpulse": "exporter",
}


# -- pyproject.toml -----------------------------------------------------------------------------


@cache
def project() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())["project"]  # type: ignore[no-any-return]


def requirement_set(extras: Iterable[str]) -> set[str]:
    """The base dependencies and the given extras, fleetpulse's own ``fleetpulse[...]``
    references expanded: what ``pip install .[extras]`` asks for."""
    name = canonicalize_name(project()["name"])
    optional = project()["optional-dependencies"]
    out: set[str] = set()
    todo, seen = list(extras), set()
    for req in project()["dependencies"]:
        out.add(req)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        assert extra in optional, f"pyproject.toml has no extra {extra!r}"
        seen.add(extra)
        for req in optional[extra]:
            parsed = Requirement(req)
            if canonicalize_name(parsed.name) == name:
                todo += sorted(parsed.extras)
            else:
                out.add(req)
    return out


def distribution_closure(requirements: Iterable[str]) -> set[str]:
    """The (canonical) names of the distributions these requirements install, transitively,
    as the distributions installed in this venv declare them (markers and extras honoured)."""
    expanded: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        first = name not in expanded
        new = set(req.extras) - expanded.get(name, set())
        if not first and not new:
            continue
        expanded.setdefault(name, set()).update(req.extras)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req} is not installed in this venv (./dev.sh installs .[all,dev,bench])")
        envs = ([""] if first else []) + sorted(new)
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if sub.marker is None:
                if first:
                    todo.append(sub)
            elif any(sub.marker.evaluate({"extra": e}) for e in envs):
                sub.marker = None
                todo.append(sub)
    return set(expanded)


# -- what a component imports -------------------------------------------------------------------


def module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside a ``try`` whose handlers catch ImportError (an optional import)."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                names = {
                    n.id
                    for n in ast.walk(handler.type or ast.Name("BaseException"))
                    if isinstance(n, ast.Name)
                }
                if names & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}:
                    return True
        child, parent = parent, parents.get(parent)
    return False


def module_imports(source: str, package: str) -> list[tuple[str, bool]]:
    """(absolute name, guarded) of every import in ``source``, lazy ones included; ``from X
    import a`` also yields ``X.a`` (a submodule or not); ``if TYPE_CHECKING:`` blocks skipped."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    skipped: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {n for stmt in node.body for n in ast.walk(stmt)}
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, _guarded(node, parents)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [node.module or ""])
                name = base.rstrip(".")
            else:
                name = node.module or ""
            guarded = _guarded(node, parents)
            found.append((name, guarded))
            found += [(f"{name}.{alias.name}", guarded) for alias in node.names]
    return found


def third_party_imports(entries: Iterable[str]) -> dict[str, dict[str, bool]]:
    """Top-level third-party module -> {project module importing it: all its imports guarded}
    over every project module the entry modules reach (parent packages included)."""
    out: dict[str, dict[str, bool]] = {}
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_path(module)
        assert path is not None, f"no project module {module}"
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for name, guarded in module_imports(path.read_text(), package):
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                if module_path(name) is not None:
                    todo.append(name)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                importers = out.setdefault(top, {})
                importers[module] = importers.get(module, True) and guarded
    return out


def missing_modules(entries: Iterable[str], requirements: Iterable[str]) -> dict[str, list[str]]:
    """Third-party modules the entries import that no distribution of ``requirements`` (or of
    their transitive requirements) provides -> the project modules importing them."""
    installed = distribution_closure(requirements)
    providers = metadata.packages_distributions()
    missing: dict[str, list[str]] = {}
    for top, importers in sorted(third_party_imports(entries).items()):
        if top in OPTIONAL_MODULES and all(importers.values()):
            continue
        dists = {canonicalize_name(d) for d in providers.get(top, [])}
        if not dists & installed:
            missing[top] = sorted(importers)
    return missing


# -- the images compose builds ------------------------------------------------------------------


@dataclass
class Image:
    name: str
    dockerfile: Path
    args: dict[str, str]
    services: list[str]
    entries: set[str]  # the project modules it runs
    runs: set[str]  # the packages its services run (python -m, flink run -py)

    @property
    def extras(self) -> list[str]:
        return installed_extras(self.dockerfile, self.args)


def installed_extras(dockerfile: Path, args: dict[str, str]) -> list[str]:
    """The extras the Dockerfile's ``docker/requirements.py`` call lists, build args substituted;
    and no other ``pip install`` than ``-r`` of that list and ``--no-deps .``."""
    instructions = dockerfile_instructions(dockerfile)
    values = {
        k: v
        for keyword, rest in instructions
        if keyword == "ARG"
        for k, _, v in [rest.partition("=")]
    } | args

    def substitute(text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), text)

    calls, installs = [], []
    for keyword, rest in instructions:
        if keyword != "RUN":
            continue
        lexer = shlex.shlex(substitute(rest), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        commands: list[list[str]] = [[]]
        for token in lexer:
            if token in ("&&", "||", ";", "|", ";;", ")", "("):
                commands.append([])
            else:
                commands[-1].append(token)
        for tokens in commands:
            if ">" in tokens:
                tokens = tokens[: tokens.index(">")]
            script = next((i for i, t in enumerate(tokens) if t.endswith("requirements.py")), None)
            if script is not None:
                calls.append(tokens[script + 1 :])
            if "pip" in tokens and "install" in tokens:
                installs.append(tokens[tokens.index("install") + 1 :])
    assert len(calls) == 1, f"{dockerfile.name}: one docker/requirements.py call, found {calls}"
    for extra in calls[0]:
        assert "$" not in extra, f"{dockerfile.name}: build arg {extra} is not set"
    # The extras, fleetpulse itself (with or without build isolation), and the build system
    # pyproject names (a build without isolation needs it installed).
    build_system = tomllib.loads(PYPROJECT.read_text())["build-system"]["requires"]
    allowed = (
        ["-r", "/tmp/requirements.txt"],
        ["--no-deps", "."],
        ["--no-deps", "--no-build-isolation", "."],
        build_system,
    )
    for argv in installs:
        assert argv in allowed, (
            f"{dockerfile.name}: pip install {shlex.join(argv)} installs outside the extras"
        )
    return calls[0]


@cache
def images() -> dict[str, Image]:
    compose = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()))
    found: dict[str, Image] = {}
    for name, svc in compose["services"].items():
        built = build_of(svc)
        if built is None:
            continue
        args = {str(k): str(v) for k, v in (svc["build"].get("args") or {}).items()}
        image = found.setdefault(
            svc.get("image") or name,
            Image(svc.get("image") or name, built[1], args, [], set(), set()),
        )
        assert (image.dockerfile, image.args) == (built[1], args), (
            f"{name}: image {image.name} is built two ways"
        )
        image.services.append(name)
        packages, prefixes = set(), set()
        for module, _ in python_module_runs(svc):
            image.entries.add(f"{module}.__main__")
            packages.add(module.split(".")[0])
            prefixes.add(module)
        for run in flink_runs(svc):
            repo = container_to_repo(svc, run.py)
            assert repo is not None, f"{name}: {run.py} is not in the image"
            module = ".".join(repo.relative_to(ROOT).with_suffix("").parts)
            image.entries.add(module)
            packages.add(module.split(".")[0])
            prefixes.add(module.split(".")[0])
        image.runs |= packages
        # The `fleetpulse` command, with the subcommands of what this image runs (`python -m
        # fleetpulse.exporter` brings `fleetpulse exporter`, not every fleetpulse command).
        image.entries.add("fleetpulse.cli")
        image.entries |= {
            target.split(":")[0]
            for target in SUBCOMMANDS.values()
            if any(target.split(":")[0] == p or target.startswith(p + ".") for p in prefixes)
        }
        for keyword, rest in dockerfile_instructions(built[1]):
            for code in (
                re.findall(r"python[\d.]*\s+-c\s+\"([^\"]*)\"", rest) if keyword == "RUN" else []
            ):
                image.entries |= {
                    n for n, _ in module_imports(code, "") if module_path(n) is not None
                }
    return found


def image_running(package: str) -> Image:
    matches = [i for i in images().values() if package in i.runs]
    assert len(matches) == 1, f"{package} runs in images {[i.name for i in matches]}"
    return matches[0]


def image_ids() -> list[str]:
    return sorted(images())


# -- the checks ---------------------------------------------------------------------------------


def test_compose_builds_one_image_per_component() -> None:
    extras = {image.name: image.extras for image in images().values()}
    assert sorted(map(tuple, extras.values())) == [
        ("dispatcher",),
        ("exporter",),
        ("gateway",),
        ("jobs",),
        ("simulator",),
    ], extras
    for package, component in COMPONENTS.items():
        assert image_running(package).extras == [component]
    assert image_running("flink_jobs").extras == ["jobs"]


@pytest.mark.parametrize("name", image_ids())
def test_the_dockerfile_installs_what_the_test_resolves(name: str) -> None:
    """docker/requirements.py, which the Dockerfiles run, lists exactly the requirement set this
    test checks (so the two resolutions of pyproject.toml cannot drift apart)."""
    image = images()[name]
    proc = subprocess.run(
        [sys.executable, str(REQUIREMENTS_SCRIPT), *image.extras],
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(proc.stdout.split()) == requirement_set(image.extras)


@pytest.mark.parametrize("package", ["alerting", "ws_gateway", "fleetpulse"])
def test_dispatcher_and_gateway_images_carry_no_pyflink(package: str) -> None:
    image = image_running(package)
    carried = distribution_closure(requirement_set(image.extras)) & FLINK_DISTRIBUTIONS
    assert not carried, f"{image.name} ({', '.join(image.services)}) installs {carried}"


def test_the_flink_image_carries_pyflink() -> None:
    image = image_running("flink_jobs")
    assert {"apache-flink", "apache-flink-libraries"} <= distribution_closure(
        requirement_set(image.extras)
    )


@pytest.mark.parametrize("name", image_ids())
def test_each_image_provides_what_its_component_imports(name: str) -> None:
    image = images()[name]
    assert image.runs, f"{name}: runs nothing fleetpulse"
    missing = missing_modules(image.entries, requirement_set(image.extras))
    assert missing == {}, (
        f"{name} (pip install .[{','.join(image.extras)}]) lacks the distributions of these "
        f"modules (module: the project modules importing it): {missing}"
    )


def test_the_cli_needs_only_the_base() -> None:
    assert missing_modules({"fleetpulse.cli"}, requirement_set([])) == {}


def test_all_is_the_four_components_and_runs_everything() -> None:
    """`pip install fleetpulse[all]` installs every component's extra, and with it every
    product module (`fleetpulse up`, `cluster`, `dlq`, ...) finds what it imports."""
    optional = project()["optional-dependencies"]
    components = ["jobs", *COMPONENTS.values()]
    assert requirement_set(["all"]) == requirement_set(components)
    assert {"dev", "bench", "all", *components} <= set(optional)
    product = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for package in PROJECT_PACKAGES - {"bench"}
        for p in (ROOT / package).rglob("*.py")
    }
    assert missing_modules(product, requirement_set(["all"])) == {}
    # `fleetpulse bench` (its Quix Streams peer runs from a venv of its own: pyproject.toml).
    assert missing_modules({"bench.cli"}, requirement_set(["all", "bench"])) == {}


def without(extras: list[str], *names: str) -> set[str]:
    return {
        r for r in requirement_set(extras) if canonicalize_name(Requirement(r).name) not in names
    }


@pytest.mark.parametrize(
    ("package", "requirements", "lacking"),
    [
        # The gateway image built without its extra: the base alone.
        ("ws_gateway", lambda: requirement_set([]), {"websockets", "redis", "shapely", "kafka"}),
        # confluent_kafka is imported lazily, in alerting.kafka_io's functions.
        ("alerting", lambda: without(["dispatcher"], "confluent-kafka"), {"confluent_kafka"}),
        # geopandas is imported lazily by udfs.geo, a project module the simulator imports.
        ("simulator", lambda: without(["simulator"], "geopandas"), {"geopandas"}),
        ("flink_jobs", lambda: without(["jobs"], "apache-flink"), {"pyflink"}),
        # The dispatcher with the jobs' extra instead of its own.
        ("alerting", lambda: requirement_set(["jobs"]), {"httpx", "prometheus_client"}),
    ],
)
def test_a_missing_extra_is_caught(package: str, requirements: Any, lacking: set[str]) -> None:
    missing = missing_modules(image_running(package).entries, requirements())
    assert lacking <= set(missing), missing


def test_pyflink_in_a_slim_image_is_caught() -> None:
    carried = distribution_closure(requirement_set(["gateway"]) | {"apache-flink==2.2.1"})
    assert carried >= FLINK_DISTRIBUTIONS


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("import a\ndef f():\n    from b.c import d\n", {"a": False, "b": False}),
        ("try:\n    import uvloop\nexcept ImportError:\n    pass\n", {"uvloop": True}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import e\n", {"typing": False}),
    ],
)
def test_the_walker_sees_lazy_guarded_and_type_only_imports(
    source: str, names: dict[str, bool]
) -> None:
    found = {n.split(".")[0]: g for n, g in module_imports(source, "udfs")}
    assert found == names


def test_the_flink_image_installs_fleetpulse_with_its_operator_jar() -> None:
    """Nothing to build on the cluster: the image's fleetpulse is built with its operator jar
    required (setup.py), by a JDK that does not stay, and the jar is checked in place."""
    text = (ROOT / "docker" / "flink.Dockerfile").read_text()
    install = re.search(
        r"FLEETPULSE_BUILD_OPERATORS=(\w+)\s*\\?\s*python3\.11 -m pip install (.+)", text
    )
    assert install is not None and install.group(1) == "require"
    assert "--no-build-isolation ." in install.group(2)
    assert "COPY setup.py" in text and "COPY jvm/src" in text
    assert "rm -rf /tmp/jdk" in text and "PACKAGED_JAR" in text
    assert "FLEETPULSE_OPERATORS_JAR" not in text
