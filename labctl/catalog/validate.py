"""Checking a lab catalog as a whole: what ``labctl lab validate`` reports.

:func:`labctl.catalog.load.read_folder` finds what one folder can show wrong (schema, missing
files); this adds what needs the catalog or the graders: the id matches its folder, ids are
unique across roots, every check names a registered grader whose parameters parse once the
placeholders are filled with a sample learner, prerequisites exist, sit at the same or a lower
level and form no cycle, and each planted mistake names real checks. Nothing stops at the first
problem: a lab author fixes a whole catalog from one run.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from graders.core import REGISTRY, BadParams, load_all
from labctl.api.labs import LEVELS, LabFile
from labctl.catalog.load import (
    LAB_FILE,
    MISTAKE_FILE,
    MISTAKES,
    LabFolder,
    Problem,
    discover,
    read_folder,
)
from labctl.core.suggest import did_you_mean, did_you_mean_lab
from labctl.grading.plan import PLACEHOLDERS, SAMPLE_PLACE, fill

MIN_MISTAKES = 3


def validate(roots: Sequence[Path], *, context: Sequence[Path] = ()) -> tuple[list[LabFolder], list[Problem]]:
    """The labs under ``roots`` that could be read, and every problem in them, sorted by file.

    ``context`` holds more roots whose labs prerequisites may name (an instructor's folder
    building on the built-in catalog) without being validated themselves."""
    labs: list[LabFolder] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            problems.append(Problem(root, "", "no such folder"))
            continue
        problems += _strays(root)
        for folder in discover(root):
            if folder.resolve() in seen:
                continue  # the same root given twice (a PATH and $LABCTL_LABS_PATH)
            seen.add(folder.resolve())
            lab, found = read_folder(folder)
            problems += found
            if lab is not None:
                labs.append(lab)
    others = list(_context_labs(context, seen))
    load_all()
    problems += _duplicates(labs, others)
    catalog = {lab.id: lab.lab for lab in others} | {lab.id: lab.lab for lab in labs}
    for lab in labs:
        problems += _folder_problems(lab)
        problems += _check_problems(lab)
        problems += _mistake_problems(lab)
        problems += _prerequisite_problems(lab, catalog)
    problems += _cycles(labs, catalog)
    return labs, sorted(problems, key=lambda p: str(p.file))


def _lab_file(lab: LabFolder) -> Path:
    return lab.path / LAB_FILE


def _context_labs(roots: Sequence[Path], seen: set[Path]) -> Iterator[LabFolder]:
    for root in roots:
        for folder in discover(root) if root.is_dir() else []:
            if folder.resolve() not in seen:
                lab, _ = read_folder(folder)  # their problems are theirs to validate
                if lab is not None:
                    yield lab


def _strays(root: Path) -> list[Problem]:
    """Folders :func:`discover` would pass over in silence: a lab there would never be found."""
    if (root / LAB_FILE).is_file():
        return []
    subfolders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    if subfolders and not any((root / level).is_dir() for level in LEVELS):
        # A lab folder without lab.yaml, or a level folder: an empty catalog holds no folders at all
        # (git keeps no empty level folders, so a fresh clone's labs/ may have none).
        hint = f"; {root} is a level: give its parent, {root.parent}" if root.name in LEVELS else ""
        return [Problem(root, "", f"no lab here: expected {LAB_FILE} or <level>/<name>/{LAB_FILE}{hint}")]
    problems = []
    for path in sorted(subfolders):
        if path.name not in LEVELS:
            if any(path.glob(f"*/{LAB_FILE}")):
                problems.append(Problem(path, "", f"not a level: labs go under {', '.join(LEVELS)}"))
            continue
        for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            if not (folder / LAB_FILE).is_file():
                problems.append(Problem(folder / LAB_FILE, "", "missing: every lab folder has a lab.yaml"))
    return problems


def _duplicates(labs: list[LabFolder], others: list[LabFolder]) -> list[Problem]:
    """Ids are unique across roots: the second lab.yaml with an id names the first."""
    first: dict[str, LabFolder] = {}
    for lab in others:
        first.setdefault(lab.id, lab)
    problems = []
    for lab in labs:
        if lab.id in first:
            problems.append(
                Problem(_lab_file(lab), "id", f"{lab.id!r} is also the id of {_lab_file(first[lab.id])}")
            )
        else:
            first[lab.id] = lab
    return problems


def _folder_problems(lab: LabFolder) -> list[Problem]:
    """The id is ``<level>/<name>`` of its folder, and its level is the ``level`` field."""
    folder = lab.path.resolve()
    expected = f"{folder.parent.name}/{folder.name}"
    problems = []
    if lab.id != expected:
        problems.append(
            Problem(
                _lab_file(lab),
                "id",
                f"{lab.id!r} does not match its folder {folder}: a lab lives in <root>/<level>/<name>/ "
                f"with id <level>/<name> (here {expected!r})",
            )
        )
    level = lab.id.split("/", 1)[0]
    if lab.lab.level != level:
        problems.append(
            Problem(_lab_file(lab), "level", f"{lab.lab.level!r}, but the id {lab.id!r} says {level!r}")
        )
    return problems


def _check_problems(lab: LabFolder) -> list[Problem]:
    """Every check names a registered grader, its parameters parse, its name is unique."""
    place = SAMPLE_PLACE | {"hidden": str(lab.path / "hidden")}
    problems: list[Problem] = []
    names: dict[str, str] = {}
    tasks: dict[str, int] = {}
    for t, task in enumerate(lab.lab.tasks):
        if task.id in tasks:
            problems.append(
                Problem(_lab_file(lab), f"tasks[{t}].id", f"{task.id!r} also names tasks[{tasks[task.id]}]")
            )
        tasks.setdefault(task.id, t)
        for c, item in enumerate(task.checks):
            at = f"tasks[{t}].checks[{c}]"
            if item.name in names:
                problems.append(
                    Problem(_lab_file(lab), f"{at}.name", f"{item.name!r} also names {names[item.name]}")
                )
            names.setdefault(item.name, at)
            problems += [
                Problem(_lab_file(lab), f, m)
                for f, m in _grader_problems(at, item.grader, item.params, place)
            ]
    return problems


def _grader_problems(
    at: str, grader: str, params: dict[str, Any], place: dict[str, str]
) -> list[tuple[str, str]]:
    spec = REGISTRY.get(grader)
    if spec is None:
        hint = did_you_mean(grader, REGISTRY) or " (see `labctl check list`)"
        return [(f"{at}.grader", f"unknown grader {grader!r}{hint}")]
    bad = list(_placeholder_problems(params, f"{at}.params"))
    if bad:
        return bad
    try:
        spec.parse(fill(params, place))
    except BadParams as exc:
        return [_param_problem(at, spec.params.model_fields, line) for line in exc.problems]
    return []


def _placeholder_problems(value: Any, at: str) -> Iterator[tuple[str, str]]:
    """Unknown or malformed ``{placeholders}``, each at its own parameter."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _placeholder_problems(inner, f"{at}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _placeholder_problems(inner, f"{at}[{i}]")
    elif isinstance(value, str):
        try:
            fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value)]
        except ValueError as exc:
            yield at, f"{value!r}: {exc} (write {{{{ and }}}} for literal braces)"
            return
        for name, spec, conv in fields:
            if name is None:
                continue
            if name not in PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
                hint = (
                    did_you_mean(name, PLACEHOLDERS)
                    if name.isidentifier()
                    else " (a literal brace is {{ or }})"
                )
                yield at, f"unknown placeholder {{{name}}}{hint} in {value!r}; known: {known}"
            elif spec or conv:
                yield at, f"{{{name}}} in {value!r}: placeholders take no format spec or conversion"


def _param_problem(at: str, fields: dict[str, Any], line: str) -> tuple[str, str]:
    """``port: Input should be ...`` from BadParams -> (``tasks[0].checks[1].params.port``, message)."""
    loc, _, message = line.partition(": ")
    message = message.removeprefix("Value error, ")
    parts = [] if loc == "(params)" else loc.split(".")
    path = f"{at}.params" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts)
    if message == "Extra inputs are not permitted" and len(parts) == 1:
        message = f"unknown parameter{did_you_mean(parts[0], fields)}; expected one of {', '.join(fields)}"
    elif message == "Field required":
        message = "required, missing"
    return path, message


def _mistake_problems(lab: LabFolder) -> list[Problem]:
    """Each mistake names real checks; the lab plants enough of them, one that games the grader."""
    checks = [c.name for c in lab.lab.checks]
    problems = []
    for mistake in lab.mistakes:
        where = mistake.path / MISTAKE_FILE
        for i, name in enumerate(mistake.spec.fails):
            if name not in checks:
                hint = did_you_mean(name, checks)
                problems.append(
                    Problem(
                        where,
                        f"fails[{i}]",
                        f"no check {name!r} in {_lab_file(lab)}{hint}; checks: {', '.join(checks)}",
                    )
                )
            elif name in mistake.spec.fails[:i]:
                problems.append(Problem(where, f"fails[{i}]", f"{name!r} named twice"))
    folders = sorted(p.name for p in (lab.path / MISTAKES).glob("*") if p.is_dir())
    if len(folders) < MIN_MISTAKES:
        problems.append(
            Problem(
                lab.path / MISTAKES,
                "",
                f"{len(folders)} planted mistake(s): a lab has at least {MIN_MISTAKES} "
                "(mistakes/<name>/mistake.yaml and run.sh), one of them with games: true",
            )
        )
    if folders and len(lab.mistakes) == len(folders) and not any(m.spec.games for m in lab.mistakes):
        problems.append(
            Problem(
                lab.path / MISTAKES,
                "games",
                "no mistake has games: true: plant one that tries to fool the grader "
                "(a fake logged metric, an always-firing alert, a constant-answer server, "
                "a Job without a GPU)",
            )
        )
    return problems


def _prerequisite_problems(lab: LabFolder, catalog: dict[str, LabFile]) -> list[Problem]:
    """Prerequisites exist and sit at the same or a lower level (levels are taken in order)."""
    problems = []
    rank = LEVELS.index(lab.lab.level)
    for i, other in enumerate(lab.lab.prerequisites):
        at = f"prerequisites[{i}]"
        if other not in catalog:
            hint = did_you_mean_lab(other, catalog)
            problems.append(Problem(_lab_file(lab), at, f"no lab {other!r} in the catalog{hint}"))
        level = other.split("/", 1)[0]
        if level in LEVELS and LEVELS.index(level) > rank:
            problems.append(
                Problem(
                    _lab_file(lab),
                    at,
                    f"{other!r} is {level}, above this {lab.lab.level} lab: a learner could never start it",
                )
            )
        if other in lab.lab.prerequisites[:i]:
            problems.append(Problem(_lab_file(lab), at, f"{other!r} listed twice"))
    return problems


def _cycles(labs: list[LabFolder], catalog: dict[str, LabFile]) -> list[Problem]:
    """Each prerequisite cycle once, on the lab.yaml of its first id: ``a -> b -> a``."""
    where = {lab.id: lab for lab in labs}
    found: dict[tuple[str, ...], None] = {}
    state: dict[str, str] = {}  # id -> "open" while on the path, "done" once explored

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in catalog[node].prerequisites if node in catalog else []:
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt) :]
                start = cycle.index(min(cycle))
                found.setdefault(tuple(cycle[start:] + cycle[:start]), None)
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = "done"

    for lab_id in sorted(catalog):
        if lab_id not in state:
            visit(lab_id, [])
    problems = []
    for cycle in found:
        owner = next((where[c] for c in cycle if c in where), None)
        if owner is None:
            continue  # only among context labs: not ours to report
        nxt = cycle[(cycle.index(owner.id) + 1) % len(cycle)]
        at = f"prerequisites[{owner.lab.prerequisites.index(nxt)}]"
        text = " -> ".join([*cycle[cycle.index(owner.id) :], *cycle[: cycle.index(owner.id)], owner.id])
        problems.append(Problem(_lab_file(owner), at, f"prerequisites form a cycle: {text}"))
    return problems
