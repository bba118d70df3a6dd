"""Read a roster (CSV with a header, or YAML) and report every problem with its row.

Validation is complete before anything is written: the caller gets either the whole
list of learners or a UsageError listing every bad row.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from labctl.api.v1alpha1 import RosterEntry
from labctl.errors import UsageError
from labctl.provision.naming import learner_name, normalise_email

COLUMNS = ("email", "name", "id")


def load_roster(path: Path, *, cohort: str) -> list[RosterEntry]:
    """Parse and validate ``path`` (``.csv``, ``.yaml`` or ``.yml``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read roster ({exc})") from None
    problems: list[str] = []
    if path.suffix.lower() == ".csv":
        rows = _csv_rows(text, path.name, problems)
    elif path.suffix.lower() in (".yaml", ".yml"):
        rows = _yaml_rows(text, path.name)
    else:
        raise UsageError(f"{path}: a roster must be .csv, .yaml or .yml")
    return validate_rows(rows, source=path.name, cohort=cohort, problems=problems)


def _csv_rows(text: str, source: str, problems: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Rows keyed by their line; malformed rows go to ``problems`` (the rest is still checked)."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise UsageError(f"{source}: empty roster (no header, no learners)") from None
    except csv.Error as exc:
        raise UsageError(f"{source} row 1: malformed header ({exc})") from None
    # A bad header makes every row unreadable: stop at it.
    bad_header = []
    if "email" not in header:
        bad_header.append(f"{source} row 1: the header needs an 'email' column (got {', '.join(header)})")
    if unknown := [h for h in header if h not in COLUMNS]:
        bad_header.append(
            f"{source} row 1: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(COLUMNS)}"
        )
    if dupes := sorted({h for h in header if header.count(h) > 1}):
        bad_header.append(f"{source} row 1: duplicate column(s) {', '.join(dupes)}")
    if bad_header:
        raise UsageError("\n".join(bad_header))
    rows = []
    try:
        for fields in reader:
            where = f"{source} row {reader.line_num}"
            if not any(f.strip() for f in fields):
                continue  # blank line
            if len(fields) != len(header):
                problems.append(
                    f"{where}: malformed row: expected {len(header)} fields "
                    f"({', '.join(header)}), got {len(fields)}"
                )
                continue
            rows.append((where, {k: v.strip() or None for k, v in zip(header, fields, strict=True)}))
    except csv.Error as exc:
        problems.append(f"{source} row {reader.line_num}: malformed CSV ({exc})")
    return rows


def _yaml_rows(text: str, source: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML ({exc})") from None
    if isinstance(data, dict) and "learners" in data:
        data = data["learners"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise UsageError(f"{source}: expected a list of learners (or a mapping with 'learners:')")
    rows = []
    for i, item in enumerate(data):
        where = f"{source} learners[{i}]"
        if isinstance(item, str):
            item = {"email": item}
        if not isinstance(item, dict):
            raise UsageError(f"{where}: expected a mapping with 'email' (got {type(item).__name__})")
        rows.append((where, {k: (str(v) if v is not None else None) for k, v in item.items()}))
    return rows


def validate_rows(
    rows: list[tuple[str, dict[str, Any]]], *, source: str, cohort: str, problems: list[str] | None = None
) -> list[RosterEntry]:
    """Every row a valid, unique learner whose namespace name is unique too."""
    problems = list(problems or [])
    if not rows and not problems:
        raise UsageError(f"{source}: empty roster: no learners")
    entries: list[RosterEntry] = []
    first_seen: dict[str, str] = {}
    names: dict[str, str] = {}
    for where, row in rows:
        try:
            entry = RosterEntry.model_validate(row)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "row"
                problems.append(f"{where}: {field}: {_friendly(err, row)}")
            continue
        key = normalise_email(entry.email)
        if key in first_seen:
            problems.append(f"{where}: duplicate learner {entry.email} (first seen on {first_seen[key]})")
            continue
        first_seen[key] = where.removeprefix(f"{source} ")
        name = learner_name(cohort, entry.email)
        if name in names:  # practically impossible (40-bit hash), but never silently merged
            problems.append(f"{where}: {entry.email} maps to the same namespace as {names[name]}")
            continue
        names[name] = entry.email
        entries.append(entry.model_copy(update={"email": key}))
    if problems:
        raise UsageError("\n".join(problems))
    return entries


def _friendly(err: Any, row: dict[str, Any]) -> str:
    if err["type"] == "missing":
        return "required"
    if err["type"] == "string_pattern_mismatch":
        return f"not an e-mail address: {row.get('email')!r}"
    if err["type"] == "extra_forbidden":
        return f"unknown field (allowed: {', '.join(COLUMNS)})"
    return str(err["msg"])
