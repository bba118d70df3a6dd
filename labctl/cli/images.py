"""``labctl images``: build the stack images on this machine and load them into a real node."""

from __future__ import annotations

import time
from typing import Any

import click

from labctl.cli.output import emit, err_console, output_option
from labctl.core.errors import UsageError
from labctl.localcluster import load_images as loader
from labctl.localcluster.images import stack
from labctl.localcluster.sim.spec import DEFAULT_NAME

BUILD_COLUMNS = ["image", "name", "size", "digest", "status", "seconds"]


def _short(rows: list[dict[str, Any]], output: str) -> list[dict[str, Any]]:
    """Tables show ``sha256:`` and 12 hex digits; JSON and YAML the whole digest."""
    if output != "table":
        return rows
    return [{**r, "digest": str(r.get("digest") or "")[:19]} for r in rows]


def _selected(names: tuple[str, ...], all_: bool, command: str) -> list[str]:
    if all_ or (not names and command == "load"):
        return list(stack.IMAGE_KEYS)
    if not names:
        raise UsageError(f"name the images to {command}, or --all (known: {', '.join(stack.IMAGE_KEYS)})")
    return stack.check_names(names)


def _build(keys: list[str]) -> list[stack.Built]:
    results = []
    with err_console.status("images: starting") as status:
        builder = stack.Builder(report=lambda msg: status.update(f"images: {msg}"))
        for key in keys:
            status.update(f"images: {key}")
            built = builder.build(key)
            results.append(built)
            state = "cached" if built.cached else f"built in {built.seconds:.1f}s"
            err_console.print(f"{key}: {state} ({stack.human_size(built.size)})")
    return results


@click.group()
def images() -> None:
    """Stack images built locally (debootstrap + labctl's OCI writer) for a real node."""


@images.command("build")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Build every image.")
@output_option
def build_cmd(names: tuple[str, ...], all_: bool, output: str) -> None:
    """Build images (cached by their inputs: unchanged ones are instant). Needs root."""
    keys = _selected(names, all_, "build")
    started = time.monotonic()
    rows = [b.row() for b in _build(keys)]
    err_console.print(f"images: {len(rows)} ready in {time.monotonic() - started:.1f}s")
    emit(_short(rows, output), output=output, columns=BUILD_COLUMNS)


@images.command("list")
@output_option
def list_cmd(output: str) -> None:
    """Every image labctl builds, and whether its current inputs are built."""
    rows = stack.list_images()
    emit(_short(rows, output), output=output, columns=["image", "name", "built", "size", "digest"])


@images.command("load")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Load every image (the default without names).")
@click.option(
    "--sim", "sim", default=DEFAULT_NAME, show_default=True, help="The sim whose real node gets them."
)
@output_option
def load_cmd(names: tuple[str, ...], all_: bool, sim: str, output: str) -> None:
    """Import images into a sim's real node (building what is missing); same digest: unchanged."""
    keys = _selected(names, all_, "load")
    loader.node_layout(sim)  # no real node: say so before building anything
    rows = []
    for built in _build(keys):
        started = time.monotonic()
        with err_console.status(f"images: loading {built.image} into {sim}-node"):
            result = loader.load(built, sim)
        seconds = round(time.monotonic() - started, 1)
        err_console.print(f"{built.image}: {result} ({seconds}s)")
        rows.append(
            {
                "image": built.image,
                "name": built.name,
                "digest": built.digest,
                "result": result,
                "seconds": seconds,
            }
        )
    emit(_short(rows, output), output=output, columns=["image", "name", "digest", "result", "seconds"])
