"""Entry point: ``labctl <group> <command>``."""

from __future__ import annotations

from typing import Any

import click

from labctl import __version__
from labctl.cli.check import check
from labctl.cli.cohort import cohort
from labctl.cli.grade import grade_cmd, gradebook, grades_cmd
from labctl.cli.images import images
from labctl.cli.install import controller, install_cmd, uninstall_cmd
from labctl.cli.lab import lab
from labctl.cli.learner import learner
from labctl.cli.sim import sim
from labctl.cli.toolchain import toolchain
from labctl.errors import LabctlError


class _Failed(click.ClickException):
    """A LabctlError surfaced to the shell: ``Error: <message>``, exit 1."""

    exit_code = 1


class _BadInput(_Failed):
    """Bad input (a flag, a file, a row): exit 2, like click's own usage errors."""

    exit_code = 2


class LabctlGroup(click.Group):
    """Turns every LabctlError into ``Error: <message>`` and its exit code; no tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LabctlError as exc:
            raise (_BadInput if exc.exit_code == 2 else _Failed)(str(exc)) from None


@click.group(cls=LabctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labctl")
def cli() -> None:
    """Orchestrate hands-on, automatically graded MLOps labs on Kubernetes."""


cli.add_command(sim)
cli.add_command(cohort)
cli.add_command(learner)
cli.add_command(install_cmd)
cli.add_command(uninstall_cmd)
cli.add_command(controller)
cli.add_command(toolchain)
cli.add_command(check)
cli.add_command(lab)
cli.add_command(grade_cmd)
cli.add_command(grades_cmd)
cli.add_command(gradebook)
cli.add_command(images)


def main() -> None:
    cli(prog_name="labctl")
