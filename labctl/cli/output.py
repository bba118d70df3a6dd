"""Print results the kubectl way: a table for people, ``-o json|yaml`` for machines."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "yaml")
F = TypeVar("F", bound=Callable[..., Any])


def output_choice(formats: Sequence[str], help: str = "Output format.") -> Callable[[F], F]:
    """kubectl's ``-o/--output``, defaulting to a table, among ``formats``."""
    return click.option(
        "-o", "--output", type=click.Choice(list(formats)), default="table", show_default=True, help=help
    )


output_option = output_choice(FORMATS)

console = Console()
if not console.is_terminal:
    # Piped output is read by people and grep alike: never truncate a cell to 80 columns.
    console = Console(width=1000)
err_console = Console(stderr=True)


def emit(
    rows: Sequence[dict[str, Any]],
    *,
    output: str,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Write ``rows`` as a table, JSON or YAML on stdout."""
    if output == "json":
        click.echo(json.dumps(list(rows), indent=2, default=str))
        return
    if output == "yaml":
        click.echo(yaml.safe_dump(list(rows), sort_keys=False), nl=False)
        return
    columns = list(columns or (rows[0].keys() if rows else []))
    if not rows:
        err_console.print("No resources found." if title is None else f"No {title} found.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False, title=title)
    for column in columns:
        table.add_column(column.upper().replace("_", " "))
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)
