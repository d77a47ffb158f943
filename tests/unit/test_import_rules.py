"""The architecture's import rules (README, "Architecture"), enforced on every module.

Each folder may import only the folders its row of the README's table names: the domain logic
stays free of I/O, a job submitted to a cluster needs only its folder, the runtime and udfs,
and nothing in the product depends on the benchmarks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

# folder (as a dotted package) -> the folders it may import besides itself
ALLOWED: dict[str, frozenset[str]] = {
    "udfs": frozenset(),
    "flink_jobs": frozenset(),
    "flink_jobs.runtime": frozenset({"flink_jobs", "udfs"}),
    "flink_jobs.tracking": frozenset({"flink_jobs", "flink_jobs.runtime", "udfs"}),
    "flink_jobs.delay": frozenset({"flink_jobs", "flink_jobs.runtime", "udfs"}),
    "alerting": frozenset({"udfs"}),
    "ws_gateway": frozenset({"udfs", "alerting"}),
    "simulator": frozenset({"udfs"}),
    "fleetpulse": frozenset(
        {
            "udfs",
            "flink_jobs",
            "flink_jobs.runtime",
            "flink_jobs.tracking",
            "flink_jobs.delay",
            "alerting",
            "ws_gateway",
            "simulator",
        }
    ),
}
PROJECT = {"udfs", "flink_jobs", "alerting", "ws_gateway", "simulator", "fleetpulse", "bench"}


def folder_of(module: str) -> str | None:
    """The folder of the table a dotted module name belongs to (None: not the project's)."""
    if module.split(".")[0] not in PROJECT:
        return None
    parts = module.split(".")
    if parts[0] == "flink_jobs" and len(parts) > 1 and f"flink_jobs.{parts[1]}" in ALLOWED:
        return f"flink_jobs.{parts[1]}"
    return parts[0]


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, lazy ones included;
    relative imports are resolved against ``package``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def violations(source: str, module: str) -> list[str]:
    """The imports of ``module`` (whose text is ``source``) that its folder may not make."""
    folder = folder_of(module)
    assert folder is not None and folder in ALLOWED, module
    package = module.rsplit(".", 1)[0] if not module.endswith("__init__") else module
    out = []
    for line, name in imported_modules(source, package):
        target = folder_of(name)
        if target is None or target == folder or target in ALLOWED[folder]:
            continue
        out.append(f"{module}:{line} imports {name} ({folder} may not import {target})")
    return out


def product_modules() -> list[tuple[str, Path]]:
    modules = []
    for folder in ALLOWED:
        if "." in folder or folder == "flink_jobs":
            continue
        for path in sorted((ROOT / folder).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules.append((dotted, path))
    modules += [
        (".".join(p.relative_to(ROOT).with_suffix("").parts), p)
        for p in sorted((ROOT / "flink_jobs").rglob("*.py"))
    ]
    return modules


def test_every_module_imports_only_what_its_folder_may() -> None:
    found = [v for module, path in product_modules() for v in violations(path.read_text(), module)]
    assert found == []


def test_every_product_folder_is_in_the_table() -> None:
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert folders <= set(ALLOWED), folders - set(ALLOWED)
    jobs = {p.parent.name for p in (ROOT / "flink_jobs").glob("*/__init__.py")}
    assert {f"flink_jobs.{j}" for j in jobs} <= set(ALLOWED)


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("udfs.geo", "import redis\nfrom udfs.models import Ping\n", False),
        ("udfs.geo", "from flink_jobs.runtime.clock import Clock\n", True),
        ("flink_jobs.runtime.kafka", "from fleetpulse.paths import jvm_dir\n", True),
        ("flink_jobs.tracking.job", "from flink_jobs.delay.parse import ParseScans\n", True),
        ("flink_jobs.tracking.job", "from flink_jobs.runtime.clock import Clock\n", False),
        ("flink_jobs.tracking.census", "from .outputs import ALERT_TAG\n", False),
        ("alerting.cli", "def f():\n    from bench.support import log\n", True),
        ("ws_gateway.alerts", "from alerting import records\n", False),
        ("simulator.cli", "from ws_gateway.tokens import sign\n", True),
        ("fleetpulse.cli", "from simulator.cli import simulate\n", False),
    ],
)
def test_the_checker_sees_lazy_relative_and_cross_folder_imports(
    module: str, source: str, broken: bool
) -> None:
    assert bool(violations(source, module)) is broken
