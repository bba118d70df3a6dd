"""Commands for lab authors: ``labctl lab validate [PATH...]``.

Registered into the ``lab`` group by labctl/cli/lab.py. Exit codes: 0 every lab valid, 2 any
problem (bad input, like click's own usage errors); problems go to stderr, one per line.
"""

from __future__ import annotations

from pathlib import Path

import click


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


@click.command("validate")
@click.argument("paths", nargs=-1, metavar="[PATH]...", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def validate_cmd(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Check lab folders: schema, files, graders and their params, prerequisites, mistakes.

    PATH is a catalog (holding <level>/<name>/ lab folders) or one lab folder. Default: the
    built-in catalog and the folders in $LABCTL_LABS_PATH. Prerequisites may name labs of
    those too. Every problem is printed with its file and field, then the exit code is 2.
    """
    # The catalog imports graders and pydantic: imported here, so `labctl lab --help` stays fast.
    from labctl.catalog.load import roots
    from labctl.catalog.validate import validate

    if paths:
        labs, problems = validate(list(paths), context=roots())
    else:
        labs, problems = validate(roots())
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        click.echo(f"{_count(len(problems), 'problem')} in {_count(len(labs), 'lab')}", err=True)
        ctx.exit(2)
    click.echo(f"{_count(len(labs), 'lab')} valid")
