"""Every command explains itself, and the README shows every command."""

import pathlib
import re

import click
import pytest
from click.testing import CliRunner

from helpers import SUCCESS
from resellctl.cli import cli


README = pathlib.Path(__file__).parent.parent / "README.md"

# The table of commands other programs and scripts call by name (README, "A tour").
NAMED_COMMANDS = [
    "modules add", "modules list", "tariffs import", "tariffs list", "order", "ops list",
    "ops show", "ops start", "tasks list", "tasks close", "services list", "services show",
    "services prolong", "services suspend", "services resume", "services close",
    "services change-tariff", "services set-param", "set-module", "checkevent", "sim serve",
    "demo",
]


def walk(group=cli, path=()):
    """(path, command) for every command and subcommand, loading the lazy ones."""
    ctx = click.Context(group, info_name="resellctl")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{' '.join(path + (name,))} does not load"
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from walk(command, path + (name,))


COMMANDS = list(walk())
IDS = [" ".join(path) for path, _ in COMMANDS]


def test_the_tree_holds_every_command_of_the_spec():
    assert set(NAMED_COMMANDS) <= set(IDS)


@pytest.mark.parametrize("path, command", COMMANDS, ids=IDS)
def test_every_command_and_option_has_help(path, command):
    assert (command.help or "").strip(), f"resellctl {' '.join(path)} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), (
                f"resellctl {' '.join(path)} {param.opts[0]} has no help text")
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(cli, [*path, flag], prog_name="resellctl")
        assert result.exit_code == SUCCESS, result.output
        assert result.stdout.startswith(f"Usage: resellctl {' '.join(path)} ")
        assert " ".join(command.help.split("\n\n")[0].split()) in " ".join(result.stdout.split())


def test_top_level_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == SUCCESS
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()
              if line.strip()}
    assert {name.split()[0] for name in NAMED_COMMANDS} <= listed
    assert listed == {path[0] for path, _ in COMMANDS if len(path) == 1}


@pytest.mark.parametrize("path", [path for path, command in COMMANDS
                                  if not isinstance(command, click.Group)], ids=" ".join)
def test_the_readme_mentions_every_command(path):
    assert f"resellctl {' '.join(path)}" in README.read_text(), (
        f"README.md does not mention `resellctl {' '.join(path)}`")


@pytest.mark.parametrize("path", [path for path, command in COMMANDS
                                  if not isinstance(command, click.Group)], ids=" ".join)
def test_every_command_shows_an_example(path):
    shown = CliRunner().invoke(cli, [*path, "--help"], prog_name="resellctl").stdout
    command = f"resellctl {' '.join(path)}"
    # An indented line that is the command itself (or a crontab line running it), not a
    # sentence that names it.
    examples = [line for line in shown.split("\n")[1:]
                if re.match(rf" +[^A-Za-z`]*{re.escape(command)}( |$)", line)]
    assert examples, f"`{command} --help` shows no indented example `{command} ...`"
