"""A lab's README as a script: what a learner types, in order, so `labctl lab test` can follow it.

A README proves itself by being followed. Its fenced ``bash`` (or ``sh``) blocks are the commands
a learner runs, in order, in one shell (a ``cd`` carries over); untagged blocks are expected output
and other languages are shown, not run. An HTML comment just before a block (invisible when the
README is rendered) says how to follow it when that differs from typing it:

    <!-- follow: background -->      runs in the background for the rest of the script
                                     ("in a second terminal, leave running": labctl lab connect)
    <!-- follow: skip -->            not run (e.g. a command that only shows an alternative)
    <!-- follow: write PATH -->      the block's text is written to PATH (a file the README tells
                                     the learner to create or edit)

Every command that fails is reported (``FAILED: <command>``) and the script goes on, as a learner
would; `labctl lab check` may fail mid-way (the README shows what is missing), the end must pass.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)\s*(?P<info>[^\s`]*)[^\n]*$")
_DIRECTIVE = re.compile(r"<!--\s*follow:\s*(?P<what>background|skip|write)\s*(?P<arg>[^\s>]*)\s*-->")
SHELLS = ("bash", "sh", "shell", "console-script")


@dataclass(frozen=True)
class Block:
    info: str
    text: str
    line: int  # where the block starts (1-based), for messages
    directive: str = ""
    argument: str = ""


def blocks(markdown: str) -> list[Block]:
    """Fenced code blocks, with the follow directive written just before each (if any)."""
    found: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    pending: tuple[str, str] = ("", "")
    while i < len(lines):
        if m := _DIRECTIVE.search(lines[i]):
            pending = (m["what"], m["arg"])
            i += 1
            continue
        m = _FENCE.match(lines[i])
        if m is None:
            if lines[i].strip():
                pending = ("", "")  # a directive binds only to the block right after it
            i += 1
            continue
        start, fence, body = i, m["fence"], []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        found.append(Block(m["info"].lower(), "\n".join(body) + "\n", start + 1, *pending))
        pending = ("", "")
        i += 1
    return found


def script(markdown: str) -> str | None:
    """The bash script that follows the README, or None when it has nothing to run."""
    parts: list[str] = []
    for block in blocks(markdown):
        if block.directive == "skip":
            continue
        if block.directive == "write":
            if not block.argument:
                raise ValueError(f"line {block.line}: 'follow: write' needs a file name")
            delimiter = "LABCTL_FOLLOW_EOF"
            parts.append(
                f"# README line {block.line}: write {block.argument}\n"
                f'mkdir -p "$(dirname {shlex.quote(block.argument)})"\n'
                f"cat > {shlex.quote(block.argument)} <<'{delimiter}'\n{block.text}{delimiter}\n"
            )
            continue
        if block.info not in SHELLS:
            continue
        if block.directive == "background":
            parts.append(f"# README line {block.line}, in the background\n( {block.text.strip()} ) &\n")
        else:
            parts.append(f"# README line {block.line}\n{block.text}")
    if not parts:
        return None
    header = (
        "set -o errtrace\n"
        "trap 'echo \"FAILED (exit $?): $BASH_COMMAND\" >&2' ERR\n"
        "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT  # what ran in the background ends with us\n"
    )
    return header + "\n".join(parts)


def failed_commands(stderr: str) -> list[str]:
    """The commands that failed while following, as the script reported them."""
    return [line.split(": ", 1)[1] for line in stderr.splitlines() if line.startswith("FAILED (exit ")]
