"""Entry point: ``labctl <group> <command>``.

Each command group is imported only when it is run: ``labctl --help`` and ``labctl lab status``
must not pay for the Kubernetes client, MLflow or pandas that other groups import (startup time:
a learner runs labctl dozens of times an hour, and kubectl answers in tens of milliseconds).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from labctl import __version__
from labctl.core.errors import LabctlError

# Every top-level command: name -> ("module:attribute", its short help). The short help is the
# first line of the command's own docstring, copied here so `labctl --help` lists every command
# without importing any; tests/unit/test_cli_lazy.py fails when the two drift apart.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("labctl.cli.check:check", "Outcome checks: list them, or run one against a learner's work."),
    "cohort": (
        "labctl.cli.cohort:cohort",
        "Cohorts: a roster of learners, each with an isolated, equipped namespace.",
    ),
    "controller": ("labctl.cli.install:controller", "The labctl controller."),
    "grade": (
        "labctl.cli.grade:grade_cmd",
        "Grade LAB for every learner of a cohort; each grading is recorded as a new attempt.",
    ),
    "dashboard": (
        "labctl.cli.dashboard:dashboard_cmd",
        "Serve the instructor's dashboard: cohorts' progress, live in the browser (read-only).",
    ),
    "gradebook": ("labctl.cli.grade:gradebook", "Gradebooks for learning-management systems."),
    "grades": (
        "labctl.cli.grade:grades_cmd",
        "Recorded grade attempts: the latest per learner and lab, or one learner's whole history.",
    ),
    "images": (
        "labctl.cli.images:images",
        "Stack images built locally (debootstrap + labctl's OCI writer) for a real node.",
    ),
    "install": (
        "labctl.cli.install:install_cmd",
        "Install CRDs, the admission policy and the controller into the cluster.",
    ),
    "lab": (
        "labctl.cli.lab:lab",
        "Labs: list, start, check and submit your work; validate, publish and test labs.",
    ),
    "learner": ("labctl.cli.learner:learner", "Learners' environments and credentials."),
    "sim": ("labctl.cli.sim:sim", "Simulated clusters for development, tests and rehearsals."),
    "toolchain": (
        "labctl.cli.toolchain:toolchain",
        "Build the local Kubernetes toolchain (etcd, control plane, kubectl, kwok).",
    ),
    "uninstall": (
        "labctl.cli.install:uninstall_cmd",
        "Remove the controller, the admission policy and the CRDs (all cohorts go with them).",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when resolved (click's "Lazily Loading Subcommands").

    ``lazy_commands`` maps a name to ``("module:attribute", short help)``; help lists the short
    help from the map, so listing the commands imports none of them.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        return self._load(cmd_name)

    def _load(self, cmd_name: str) -> click.Command:
        module_name, _, attribute = self.lazy_commands[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        self.add_command(command, cmd_name)  # resolved once per process
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with an unloaded command's short help taken from the map."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is None:
                # A stand-in carrying the mapped help: click shortens it exactly as the command's own.
                command = click.Command(name, help=self.lazy_commands[name][1])
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _Failed(click.ClickException):
    """A LabctlError surfaced to the shell: ``Error: <message>``, exit 1."""

    exit_code = 1


class _BadInput(_Failed):
    """Bad input (a flag, a file, a row): exit 2, like click's own usage errors."""

    exit_code = 2


class LabctlGroup(LazyGroup):
    """Turns every LabctlError into ``Error: <message>`` and its exit code; no tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LabctlError as exc:
            raise (_BadInput if exc.exit_code == 2 else _Failed)(str(exc)) from None


@click.group(
    cls=LabctlGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="labctl")
def cli() -> None:
    """Orchestrate hands-on, automatically graded MLOps labs on Kubernetes."""


def main() -> None:
    cli(prog_name="labctl")
