"""Print fleetpulse's requirements for the given extras, one a line, from pyproject.toml.

    python docker/requirements.py dispatcher > /tmp/requirements.txt

The pyproject.toml is the one beside docker/ (the build context's root). The base [project]
dependencies, then each extra's list, with fleetpulse's references to its
own extras (``fleetpulse[a,b]``, as in ``all``) expanded. The images install these first, in a
layer that survives source changes, and fleetpulse itself afterwards with ``--no-deps``.
Standard library only: it runs before anything is installed. An unknown extra is an error.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extras: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    name = normalize(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    self_ref = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*\[([^\]]*)\]\s*$")
    out: list[str] = []
    seen: set[str] = set()

    def add(requirement: str) -> None:
        m = self_ref.match(requirement)
        if m and normalize(m.group(1)) == name:
            for extra in m.group(2).split(","):
                expand(extra.strip())
        elif requirement not in out:
            out.append(requirement)

    def expand(extra: str) -> None:
        if extra in seen:
            return
        if extra not in optional:
            known = ", ".join(sorted(optional))
            raise SystemExit(f"{pyproject.name}: no extra {extra!r} (extras: {known})")
        seen.add(extra)
        for requirement in optional[extra]:
            add(requirement)

    for requirement in project.get("dependencies", []):
        add(requirement)
    for extra in extras:
        expand(extra)
    return out


def main(argv: list[str]) -> int:
    print("\n".join(requirements(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
