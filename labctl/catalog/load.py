"""Reading lab folders: ``lab.yaml``, README, setup objects, hidden data and planted mistakes.

Reading never stops at the first problem: :func:`read_folder` returns what it could read and a
:class:`Problem` per thing wrong, each naming its file and field, so ``labctl lab validate``
can report a whole catalog at once. :func:`load_catalog` is the strict entry point the other
commands use: every problem, or the labs.
"""

from __future__ import annotations

import importlib.resources
import os
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from labctl.api.labs import LEVELS, LabFile, MistakeFile
from labctl.core.errors import UsageError
from labctl.core.suggest import did_you_mean

LAB_FILE = "lab.yaml"
README = "README.md"
SOLUTION = Path("solution") / "run.sh"
MISTAKES = "mistakes"
MISTAKE_FILE = "mistake.yaml"
RUN = "run.sh"
EXTRA_ROOTS_ENV = "LABCTL_LABS_PATH"  # more lab roots, ':'-separated, searched after the built-in one


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a lab file: ``labs/x/lab.yaml: tasks[0].checks[1].grader: unknown ...``."""

    file: Path
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}" if self.field else f"{self.file}: {self.message}"


@dataclass(frozen=True)
class Mistake:
    name: str
    path: Path
    spec: MistakeFile

    @property
    def script(self) -> Path:
        return self.path / RUN


@dataclass(frozen=True)
class LabFolder:
    """A lab as read from its folder."""

    path: Path
    lab: LabFile
    readme: str
    setup: tuple[dict[str, Any], ...] = ()
    mistakes: tuple[Mistake, ...] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        return self.lab.id

    @property
    def solution(self) -> Path:
        return self.path / SOLUTION

    def hidden_files(self) -> dict[str, bytes]:
        """The grader's hidden data, by file name (flat: ``hidden/<name>``)."""
        return {name: (self.path / "hidden" / name).read_bytes() for name in self.lab.hidden}


def builtin_root() -> Path:
    """The catalog shipped with labctl (the ``labs`` package: a wheel install finds it too)."""
    return Path(str(importlib.resources.files("labs")))


def roots(extra: Sequence[Path] = ()) -> list[Path]:
    """Where labs are looked for: the built-in catalog, ``$LABCTL_LABS_PATH``, then ``extra``."""
    found = [builtin_root()]
    found += [Path(p) for p in os.environ.get(EXTRA_ROOTS_ENV, "").split(":") if p]
    return found + list(extra)


def discover(root: Path) -> list[Path]:
    """Lab folders under ``root``: itself if it holds a lab.yaml, else ``<level>/<name>/``."""
    if (root / LAB_FILE).is_file():
        return [root]
    return sorted(p.parent for level in LEVELS for p in (root / level).glob(f"*/{LAB_FILE}"))


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> Problem:
    """``lab.yaml: line 4: not valid YAML: ...``: the line is the field a YAML error can name."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return Problem(path, "", f"not valid YAML: {exc}".replace("\n", " "))
    what = ": ".join(str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
    return Problem(path, f"line {mark.line + 1}", f"not valid YAML: {what} (column {mark.column + 1})")


def _text(path: Path, problems: list[Problem]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem(path, "", f"cannot read: {exc.strerror}"))
    except UnicodeDecodeError as exc:
        problems.append(Problem(path, "", f"not UTF-8 text (byte {exc.start})"))
    return None


_UNREADABLE = object()  # already reported: no "empty file" on top of "not valid YAML"


def _yaml(path: Path, problems: list[Problem]) -> Any:
    text = _text(path, problems)
    if text is None:
        return _UNREADABLE
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(path, exc))
    return _UNREADABLE


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside a field's type: ``list[Task]`` -> [Task], ``X | None`` -> [X]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Annotated,):
        return _models_in(typing.get_args(annotation)[0])
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _keys_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys the model nested at ``loc`` accepts, as written in YAML (its aliases)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        found = [f for n, f in current.model_fields.items() if part in (n, f.alias)]
        inner = _models_in(found[0].annotation) if found else []
        current = inner[0] if inner else None
    return [] if current is None else [f.alias or n for n, f in current.model_fields.items()]


def field_path(loc: Sequence[int | str]) -> str:
    """``("tasks", 0, "checks", 1, "grader")`` -> ``tasks[0].checks[1].grader``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _message(err: Any, model: type[BaseModel]) -> str:
    loc = err["loc"]
    if err["type"] == "extra_forbidden" and loc:
        keys = _keys_at(model, loc[:-1])
        return f"unknown key{did_you_mean(str(loc[-1]), keys)}" + (
            f"; expected one of {', '.join(keys)}" if keys else ""
        )
    if err["type"] == "missing":
        return "required, missing"
    return str(err["msg"]).removeprefix("Value error, ")


def _model(path: Path, data: Any, model: type[BaseModel], problems: list[Problem]) -> Any:
    if data is _UNREADABLE:
        return None
    if data is None:
        problems.append(Problem(path, "", "empty: expected a mapping"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(path, "", f"expected a mapping, got {type(data).__name__}"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            problems.append(Problem(path, field_path(err["loc"]), _message(err, model)))
        return None


def _setup_objects(folder: Path, problems: list[Problem]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted((folder / "setup").glob("*.yaml")):
        text = _text(path, problems)
        if text is None:
            continue
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            problems.append(_yaml_problem(path, exc))
            continue
        for i, doc in enumerate(d for d in docs if d is not None):
            if (
                not isinstance(doc, dict)
                or not {"apiVersion", "kind", "metadata"} <= doc.keys()
                or not isinstance(doc["metadata"], dict)
            ):
                problems.append(
                    Problem(
                        path, f"document {i}", "expected a Kubernetes object (apiVersion, kind, metadata)"
                    )
                )
            elif doc["metadata"].get("namespace"):
                problems.append(
                    Problem(
                        path,
                        f"document {i}.metadata.namespace",
                        "setup objects go in the learner's namespace: leave namespace out",
                    )
                )
            else:
                objects.append(doc)
    return objects


def read_folder(folder: Path) -> tuple[LabFolder | None, list[Problem]]:
    """The lab in ``folder`` (None when lab.yaml itself is unusable) and every problem found."""
    problems: list[Problem] = []
    lab_path = folder / LAB_FILE
    lab = _model(lab_path, _yaml(lab_path, problems), LabFile, problems) if lab_path.is_file() else None
    if not lab_path.is_file():
        problems.append(Problem(lab_path, "", "missing: every lab folder has a lab.yaml"))
    readme = folder / README
    if not readme.is_file():
        problems.append(Problem(readme, "", "missing: the learner's instructions"))
    if not (folder / SOLUTION).is_file():
        problems.append(Problem(folder / SOLUTION, "", "missing: every lab ships a reference solution"))
    setup = _setup_objects(folder, problems)
    mistakes = []
    for path in sorted(p for p in (folder / MISTAKES).glob("*") if p.is_dir()):
        spec_path = path / MISTAKE_FILE
        if not spec_path.is_file():
            problems.append(Problem(spec_path, "", "missing: a mistake says which checks must catch it"))
            continue
        if not (path / RUN).is_file():
            problems.append(Problem(path / RUN, "", "missing: the mistake's wrong solution"))
        spec = _model(spec_path, _yaml(spec_path, problems), MistakeFile, problems)
        if spec is not None:
            mistakes.append(Mistake(path.name, path, spec))
    if lab is None:
        return None, problems
    for i, name in enumerate(lab.hidden):
        if "/" in name or name in ("", ".", ".."):
            problems.append(
                Problem(lab_path, f"hidden[{i}]", f"{name!r}: a file name directly under hidden/")
            )
        elif not (folder / "hidden" / name).is_file():
            shipped = not (folder / "hidden").exists() and "site-packages" in folder.parts
            why = (
                " (the installed package carries no hidden data: use a labctl source checkout)"
                if shipped
                else ""
            )
            problems.append(Problem(lab_path, f"hidden[{i}]", f"no file hidden/{name} in {folder}{why}"))
    text = (_text(readme, problems) or "") if readme.is_file() else ""
    return LabFolder(folder, lab, text, tuple(setup), tuple(mistakes)), problems


def load_catalog(where: Iterable[Path] | None = None) -> list[LabFolder]:
    """Every lab under ``where`` (default: :func:`roots`), or a UsageError listing every problem.

    Only the problems reading single folders can find; ``labctl.catalog.validate`` checks the
    catalog as a whole (graders, prerequisites, mistakes)."""
    labs, problems = [], []
    for root in where if where is not None else roots():
        for folder in discover(root):
            lab, found = read_folder(folder)
            problems += found
            if lab is not None:
                labs.append(lab)
    if problems:
        raise UsageError("\n".join(map(str, problems)))
    return labs
