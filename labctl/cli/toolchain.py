"""``labctl toolchain``: build and inspect the Kubernetes binaries labctl compiles from Go modules."""

from __future__ import annotations

import click

from labctl.cli.output import emit, err_console, output_option
from labctl.core.errors import LabctlError, UsageError
from labctl.localcluster.toolchain import build as builder
from labctl.localcluster.toolchain import paths


@click.group()
def toolchain() -> None:
    """Build the local Kubernetes toolchain (etcd, control plane, kubectl, kwok)."""


@toolchain.command("build")
@click.option("--force", is_flag=True, help="Rebuild even what is cached.")
@click.option(
    "--group",
    "group_names",
    multiple=True,
    metavar="NAME",
    help="Build only this group (repeatable), e.g. kube-score, cyclonus, kubernetes-node. "
    "Default: what a sim needs.",
)
def build_cmd(force: bool, group_names: tuple[str, ...]) -> None:
    """Build missing binaries from Go modules at the pinned versions (cached by version)."""
    try:
        groups = tuple(paths.group_named(name) for name in group_names) or paths.GROUPS
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    try:
        times = builder.build(force=force, report=lambda msg: err_console.print(msg), groups=groups)
    except builder.BuildError as exc:
        raise LabctlError(str(exc)) from None
    if times:
        total = sum(times.values())
        err_console.print(f"toolchain built in {total:.1f}s")


@toolchain.command("status")
@output_option
def status_cmd(output: str) -> None:
    """Show each binary, its pinned version and whether it is built."""
    missing = set(paths.missing(paths.ALL_GROUPS))
    rows = [
        {
            "binary": name,
            "version": group.version,
            "built": name not in missing,
            "path": str(paths.bin_dir(group) / name),
        }
        for group in paths.ALL_GROUPS
        for name in group.binaries
    ]
    emit(rows, output=output)


@toolchain.command("which")
@click.argument("binary")
def which_cmd(binary: str) -> None:
    """Print the path of a built binary (e.g. `labctl toolchain which kubectl`)."""
    try:
        path = paths.binary(binary)
    except KeyError:
        known = ", ".join(name for group in paths.ALL_GROUPS for name in group.binaries)
        raise UsageError(f"unknown binary {binary!r}; known: {known}") from None
    if not path.exists():
        raise LabctlError(f"{binary} is not built yet; run `labctl toolchain build`")
    click.echo(path)
