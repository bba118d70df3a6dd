"""The CLI imports only what a command uses: help imports no command module and no Kubernetes client.

A regression guard, not a timing test: `labctl --help` and `labctl lab --help` are checked in a
fresh interpreter for the modules they pulled in (bench/cli_startup.py measures the time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from labctl.cli.main import COMMANDS, LabctlGroup, cli

# Runs the CLI in-process, then reports every imported module on stderr (stdout holds the help).
PROBE = """
import json, sys
from labctl.cli.main import cli
try:
    cli(sys.argv[1:], prog_name="labctl")
except SystemExit as exc:
    if exc.code:
        raise
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""

# What a help screen must never import: the Kubernetes client and the heavy data-science stack.
HEAVY = ("kubernetes", "labctl.kube", "mlflow", "pandas", "sklearn")


def imported_by(*args: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """The output and the modules `labctl ARGS` imported, in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(proc.stderr.strip().splitlines()[-1])


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_top_level_help_imports_no_command_module() -> None:
    text, modules = imported_by("--help")
    assert heavy(modules) == []
    assert [m for m in modules if m.startswith("labctl.cli.") and m != "labctl.cli.main"] == []
    for name in COMMANDS:
        assert f"  {name} " in text


@pytest.mark.parametrize("args", [["lab", "--help"], ["lab", "status", "--help"]])
def test_lab_help_imports_no_kubernetes_client(args: list[str]) -> None:
    text, modules = imported_by(*args)
    assert heavy(modules) == []
    assert "Usage: labctl lab" in text


def test_sim_list_imports_no_kubernetes_client(tmp_path: Path) -> None:
    text, modules = imported_by("sim", "list", "-o", "json", env={"LABCTL_STATE_DIR": str(tmp_path)})
    assert heavy(modules) == []
    assert text.strip() == "[]"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_lazy_command_resolves_with_its_own_short_help(name: str) -> None:
    ctx = click.Context(cli, info_name="labctl")
    command = cli.get_command(ctx, name)
    assert isinstance(command, click.Command), COMMANDS[name][0]
    assert command.name == name
    assert command.help is not None
    # The map's short help is the docstring's first line, so the two cannot drift apart.
    assert COMMANDS[name][1] == command.help.splitlines()[0]


@pytest.mark.parametrize("width", [40, 80, 200])
def test_help_reads_as_an_eagerly_loaded_group_would(width: int) -> None:
    """A fresh lazy group (nothing loaded yet) prints the help click prints for the loaded commands."""
    lazy = LabctlGroup("labctl", lazy_commands=COMMANDS, help=cli.help, params=cli.params)
    loaded = {name: cli.get_command(click.Context(cli), name) for name in COMMANDS}
    eager = click.Group(
        "labctl",
        commands={n: c for n, c in loaded.items() if c is not None},
        help=cli.help,
        params=cli.params,
    )

    def help_of(group: click.Group) -> str:
        ctx = click.Context(
            group, info_name="labctl", terminal_width=width, help_option_names=["-h", "--help"]
        )
        return group.get_help(ctx)

    assert "Commands:" in help_of(lazy)
    assert help_of(lazy) == help_of(eager)


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "labctl.cli", "nope"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "No such command 'nope'" in proc.stderr
