"""Reading lab folders: ``lab.yaml``, README, setup objects, hidden data and planted mistakes.

Reading never stops at the first problem: :func:`read_folder` returns what it could read and a
:class:`Problem` per thing wrong, each naming its file and field, so ``labctl lab validate``
can report a whole catalog at once. :func:`load_catalog` is the strict entry point the other
commands use: every problem, or the labs.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from labctl.api.labs import LEVELS, LabFile, MistakeFile
from labctl.errors import UsageError

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


def _yaml(path: Path, problems: list[Problem]) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        problems.append(Problem(path, "", f"cannot read: {exc.strerror}"))
    except yaml.YAMLError as exc:
        problems.append(Problem(path, "", f"not valid YAML: {exc}".replace("\n", " ")))
    return None


def _model(path: Path, data: Any, model: type[BaseModel], problems: list[Problem]) -> Any:
    if not isinstance(data, dict):
        problems.append(Problem(path, "", f"expected a mapping, got {type(data).__name__}"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            problems.append(Problem(path, where, err["msg"].removeprefix("Value error, ")))
        return None


def _setup_objects(folder: Path, problems: list[Problem]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted((folder / "setup").glob("*.yaml")):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            problems.append(Problem(path, "", f"not valid YAML: {exc}".replace("\n", " ")))
            continue
        for i, doc in enumerate(d for d in docs if d is not None):
            if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= doc.keys():
                problems.append(Problem(path, f"document {i}", "expected a Kubernetes object"))
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
        if "/" in name or not (folder / "hidden" / name).is_file():
            problems.append(Problem(lab_path, f"hidden[{i}]", f"no file hidden/{name} in {folder}"))
    return (
        LabFolder(folder, lab, readme.read_text() if readme.is_file() else "", tuple(setup), tuple(mistakes)),
        problems,
    )


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
