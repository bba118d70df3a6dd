"""Typed YAML files (grading plans, stack settings): read, validate, and say exactly what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from labctl.core.errors import UsageError

M = TypeVar("M", bound=BaseModel)


def problems(source: object, exc: ValidationError) -> UsageError:
    """One line per invalid field, each naming ``source`` and the field's path."""
    lines = [
        f"{source}: {'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors(include_url=False)
    ]
    return UsageError("\n".join(lines))


def load_model(path: Path, model: type[M], *, what: str) -> M:
    """``model`` from the YAML mapping in ``path``; any problem is a UsageError naming the file."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read {what}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of {what}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise problems(path, exc) from None
