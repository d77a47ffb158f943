"""Every option of every `fleetpulse` command says in --help what it is, its default and the
environment variable it reads (as the Flink jobs' settings do)."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from fleetpulse.cli import main


def _walk(
    group: click.Group, ctx: click.Context, path: str
) -> Iterator[tuple[str, click.Command, click.Context]]:
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None:  # that part of fleetpulse is not built here
            continue
        # a top-level subcommand gets a context of its own, as under `python -m alerting`;
        # deeper ones inherit from their group's, as click does
        parent = None if group is main else ctx
        sub_ctx = click.Context(cmd, parent=parent, info_name=name, **cmd.context_settings)
        yield f"{path} {name}", cmd, sub_ctx
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, sub_ctx, f"{path} {name}")


def _commands() -> list[tuple[str, click.Command, click.Context]]:
    root = click.Context(main, info_name="fleetpulse", **main.context_settings)
    return [("fleetpulse", main, root), *_walk(main, root, "fleetpulse")]


def test_walk_reaches_the_subcommands() -> None:
    paths = {path for path, _, _ in _commands()}
    assert "fleetpulse up" in paths
    assert len(paths) > 5


def test_every_option_has_help_default_and_envvar_shown() -> None:
    missing_help: list[str] = []
    hidden_envvar: list[str] = []
    hidden_default: list[str] = []
    for path, cmd, ctx in _commands():
        for param in cmd.params:
            if not isinstance(param, click.Option) or "--help" in param.opts:
                continue
            where = f"{path} {'/'.join(param.opts + param.secondary_opts)}"
            if not (param.help or "").strip():
                missing_help.append(where)
            if param.envvar and not param.show_envvar:
                hidden_envvar.append(where)
            if param.show_default is False or (param.show_default is None and not ctx.show_default):
                hidden_default.append(where)
    assert not missing_help, f"options without help text: {missing_help}"
    assert not hidden_envvar, f"options hiding their environment variable: {hidden_envvar}"
    assert not hidden_default, f"options hiding their default: {hidden_default}"


def test_up_help_shows_defaults_and_environment_variables() -> None:
    result = CliRunner().invoke(main, ["up", "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "[default:" in result.output
    assert "env var:" in result.output
    assert "FLEETPULSE_KAFKA_PORT" in result.output
