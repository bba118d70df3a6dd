"""``labctl lab publish [PATH...]``: validate labs whole, then put them into the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from labctl.cli.common import kube_options
from labctl.cli.output import emit, output_option
from labctl.core.errors import UsageError

if TYPE_CHECKING:
    from labctl.catalog.load import LabFolder
    from labctl.kube import Kube


def validated(paths: tuple[Path, ...]) -> list[LabFolder]:
    """The labs under ``paths`` (default: the built-in catalog and $LABCTL_LABS_PATH), or every
    problem as a UsageError: nothing is published from a broken catalog."""
    # The catalog imports graders and pydantic: imported here, so `labctl lab --help` stays fast.
    from labctl.catalog.load import roots
    from labctl.catalog.validate import validate

    # Given folders may name the built-in labs as prerequisites: those count, unpublished.
    labs, problems = validate(list(paths), context=roots()) if paths else validate(roots())
    if problems:
        raise UsageError("\n".join(map(str, problems)) + f"\n{len(problems)} problem(s): nothing published")
    return labs


@click.command("publish")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@output_option
@kube_options
def publish_cmd(kube: Kube, paths: tuple[Path, ...], output: str) -> None:
    """Publish labs (default: the built-in catalog): each version once, hidden data kept from learners."""
    from labctl.catalog.publish import publish

    labs = validated(paths)
    done = publish(kube, labs)
    emit([{"lab": name, "action": action} for name, action in done], output=output, columns=["lab", "action"])
