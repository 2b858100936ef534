"""Issue 20: an example under every command's --help, `csforecast --help` too; each example names its command."""
from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from csforecast.cli import app
from csforecast.cli.examples import COMMANDS

runner = CliRunner()


def _paths(typer_app, prefix=()):
    for cmd in typer_app.registered_commands:
        yield (*prefix, cmd.name or cmd.callback.__name__.replace("_", "-"))
    for group in typer_app.registered_groups:
        yield (*prefix, group.name)
        yield from _paths(group.typer_instance, (*prefix, group.name))


PATHS = list(_paths(app))


def test_every_command_is_listed():
    assert {" ".join(p) for p in PATHS} == set(COMMANDS)
    assert len(PATHS) >= 17


@pytest.mark.parametrize("path", [(), *PATHS], ids=lambda p: " ".join(p) or "csforecast")
def test_help_shows_examples(path):
    r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    text = re.sub(r"\s+", " ", r.output)
    assert "Examples" in text
    name = " ".join(path)
    examples = re.findall(r"csforecast [a-z][a-z -]*", text.split("Examples", 1)[1])
    assert examples, text
    if name:   # at least one example runs the command itself
        assert any(e.startswith(f"csforecast {name}") for e in examples), examples
