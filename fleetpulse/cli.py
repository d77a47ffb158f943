"""The `fleetpulse` command. Subcommands live with the package that owns them and are loaded
lazily, so `fleetpulse status` does not import PyFlink or geopandas."""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, str] = {
    "up": "fleetpulse.commands:up",
    "down": "fleetpulse.commands:down",
    "status": "fleetpulse.commands:status",
    "dlq": "fleetpulse.commands:dlq",
    "simulate": "simulator.cli:simulate",
    "replay": "simulator.cli:replay",
    "alerts": "alerting.cli:alerts",
    "gateway": "ws_gateway.cli:gateway",
    "bench": "bench.cli:bench",
    "cluster": "fleetpulse.cluster_cli:cluster",
    "exporter": "fleetpulse.exporter.cli:exporter",
    "backfill": "fleetpulse.backfill.cli:backfill",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return None  # that part of fleetpulse is not built yet
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"show_default": True})
@click.version_option(package_name="fleetpulse")
def main() -> None:
    """fleetpulse: real-time truck tracking and shipment delay alerting."""


if __name__ == "__main__":
    main()
