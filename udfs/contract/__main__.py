"""``python -m udfs.contract --write docs/schemas`` (or ``--check``): the JSON Schema files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from udfs.contract.schemas import stale_schemas, write_schemas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m udfs.contract", description="Generate the contract's JSON Schema files."
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, metavar="DIR", help="write the schemas into DIR")
    action.add_argument(
        "--check", type=Path, metavar="DIR", help="exit 1 if DIR's schemas differ from the code"
    )
    args = parser.parse_args(argv)
    if args.write is not None:
        for path in write_schemas(args.write):
            print(path)
        return 0
    stale = stale_schemas(args.check)
    for name in stale:
        print(f"{args.check / name} is stale: run python -m udfs.contract --write {args.check}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
